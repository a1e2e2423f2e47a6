//! Integer inputs and sequence models end to end: `Input([T], dtype = i32)`, integer arrays in
//! `fit`/`evaluate`/`predict`, ids checked against the Embedding's `input_dim` with the row and
//! position named, and models with Embedding and recurrent layers learning a task that depends
//! on token order, in `sequential!` and `functional!` with mixed integer and float inputs.

use kiln::ndarray::{Array1, Array2};
use kiln::prelude::*;
use rand::{Rng, SeedableRng};

sequential! {
    /// Whether token 1 comes before token 2 among 8 tokens.
    pub struct Order: Input([8], dtype = i32) {
        Embedding(6, 8),
        LSTM(16),
        Dense(1, activation = sigmoid),
    }
}

functional! {
    /// The same question from a GRU, with a float input beside the ids (a constant the model may ignore).
    pub struct OrderMixed {
        tokens = Input([8], dtype = i32);
        extra = Input([2]);
        e = Embedding(6, 8)(tokens);
        h = GRU(16)(e);
        m = Concatenate()([h, extra]);
        out = Dense(1, activation = sigmoid)(m);
        Model([tokens, extra], out)
    }
}

sequential! {
    /// A bag of words: the mean of the token vectors, which cannot see order.
    pub struct Bag: Input([8], dtype = i32) {
        Embedding(6, 8),
        GlobalAveragePooling1D,
        Dense(16, activation = relu),
        Dense(1, activation = sigmoid),
    }
}

/// `n` sequences of fillers 3..6 with one 1 and one 2 at random places; label: the 1 comes first.
fn order_task(n: usize, seed: u64) -> (Array2<i32>, Array1<f32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut x = Array2::zeros((n, 8));
    let mut y = Array1::zeros(n);
    for i in 0..n {
        for t in 0..8 {
            x[[i, t]] = rng.random_range(3..6);
        }
        let a = rng.random_range(0..8);
        let b = (a + rng.random_range(1..8)) % 8;
        x[[i, a]] = 1;
        x[[i, b]] = 2;
        y[i] = (a < b) as u8 as f32;
    }
    (x, y)
}

#[test]
fn an_lstm_learns_token_order_where_a_bag_of_words_cannot() {
    let (x, y) = order_task(1200, 1);
    let (xt, yt) = order_task(400, 2);
    let opts = Fit { epochs: 25, batch_size: 32, verbose: 0, ..Fit::default() };

    let mut lstm = Order::new();
    lstm.compile("binary_crossentropy", Adam::new(0.01), &["accuracy"]).unwrap();
    lstm.fit(&x, &y, opts.clone()).unwrap();
    let acc = lstm.evaluate(&xt, &yt).unwrap()["accuracy"];
    assert!(acc >= 0.95, "LSTM held-out accuracy {acc}");

    let mut bag = Bag::new();
    bag.compile("binary_crossentropy", Adam::new(0.01), &["accuracy"]).unwrap();
    bag.fit(&x, &y, opts).unwrap();
    let bag_acc = bag.evaluate(&xt, &yt).unwrap()["accuracy"];
    assert!(bag_acc < 0.75, "a bag of words should not see order, got {bag_acc}");
}

#[test]
fn a_functional_model_mixes_integer_and_float_inputs() {
    let (x, y) = order_task(1200, 3);
    let (xt, yt) = order_task(400, 4);
    let extra = Array2::<f32>::ones((x.nrows(), 2));
    let extra_t = Array2::<f32>::ones((xt.nrows(), 2));
    let mut m = OrderMixed::new();
    assert_eq!(OrderMixed::INPUTS[0].dtype, kiln::DType::I32 { below: 6 });
    assert_eq!(OrderMixed::INPUTS[1].dtype, kiln::DType::F32);
    m.compile("binary_crossentropy", Adam::new(0.01), &["accuracy"]).unwrap();
    m.fit((&x, &extra), &y, Fit { epochs: 25, batch_size: 32, verbose: 0, ..Fit::default() }).unwrap();
    let acc = m.evaluate((&xt, &extra_t), &yt).unwrap()["accuracy"];
    assert!(acc >= 0.95, "GRU held-out accuracy {acc}");
    let p = m.predict((&xt, &extra_t)).unwrap();
    assert_eq!(p.shape(), &[400, 1]);
}

#[test]
fn a_token_id_outside_the_vocabulary_is_an_error_naming_its_place() {
    let mut m = Order::new();
    m.compile("binary_crossentropy", "adam", &[]).unwrap();
    let (mut x, y) = order_task(10, 5);
    x[[7, 3]] = 6;
    let e = m.fit(&x, &y, Fit { verbose: 0, ..Fit::default() }).unwrap_err().to_string();
    assert!(e.contains("row 7, position [3] holds 6, not a token id in 0..6"), "{e}");
    x[[7, 3]] = -1;
    let e = m.predict(&x).unwrap_err().to_string();
    assert!(e.contains("row 7, position [3] holds -1"), "{e}");
    // Floats holding ids are accepted; a fraction is not an id.
    let xf = x.mapv(|v| v.max(0) as f32);
    assert!(m.predict(&xf).is_ok());
    let mut xf = xf;
    xf[[0, 0]] = 2.5;
    let e = m.predict(&xf).unwrap_err().to_string();
    assert!(e.contains("row 0, position [0] holds 2.5"), "{e}");
    let e = m.predict_one(&[1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0, 9.0]).unwrap_err().to_string();
    assert!(e.contains("position [7] holds 9"), "{e}");
}

#[test]
fn integer_labels_are_accepted() {
    sequential! {
        pub struct Tiny: [3] {
            Dense(4, activation = softmax),
        }
    }
    let x = Array2::<f32>::from_shape_fn((8, 3), |(i, j)| ((i + j) % 3) as f32);
    let y = Array1::<i32>::from_shape_fn(8, |i| (i % 4) as i32);
    let mut m = Tiny::new();
    m.compile("sparse_categorical_crossentropy", "adam", &["accuracy"]).unwrap();
    let h = m.fit(&x, &y, Fit { epochs: 2, verbose: 0, ..Fit::default() }).unwrap();
    assert_eq!(h.get("loss").unwrap().len(), 2);
}

sequential! {
    /// For every token: is it the same as the last token of the sequence? Every step but the
    /// last needs to see the end.
    pub struct Tagger: Input([8], dtype = i32) {
        Embedding(6, 8),
        Bidirectional(LSTM(12, return_sequences = true)),
        TimeDistributed(Dense(2, activation = softmax)),
    }
}

sequential! {
    /// The same tags from the forward direction alone, which cannot see what comes later.
    pub struct ForwardTagger: Input([8], dtype = i32) {
        Embedding(6, 8),
        LSTM(12, return_sequences = true),
        TimeDistributed(Dense(2, activation = softmax)),
    }
}

fn tag_task(n: usize, seed: u64) -> (Array2<i32>, Array2<i32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let x = Array2::from_shape_fn((n, 8), |_| rng.random_range(2..6));
    let y = Array2::from_shape_fn((n, 8), |(i, t)| (x[[i, t]] == x[[i, 7]]) as i32);
    (x, y)
}

#[test]
fn a_bidirectional_tagger_sees_both_directions() {
    let (x, y) = tag_task(1500, 6);
    let (xt, yt) = tag_task(400, 7);
    let opts = Fit { epochs: 15, batch_size: 32, verbose: 0, ..Fit::default() };
    let mut bi = Tagger::new();
    bi.compile("sparse_categorical_crossentropy", Adam::new(0.01), &["accuracy"]).unwrap();
    bi.fit(&x, &y, opts.clone()).unwrap();
    let acc = bi.evaluate(&xt, &yt).unwrap()["accuracy"];
    assert!(acc >= 0.95, "Bidirectional per-step accuracy {acc}");
    let mut fw = ForwardTagger::new();
    fw.compile("sparse_categorical_crossentropy", Adam::new(0.01), &["accuracy"]).unwrap();
    fw.fit(&x, &y, opts).unwrap();
    let fw_acc = fw.evaluate(&xt, &yt).unwrap()["accuracy"];
    assert!(fw_acc < 0.9, "one direction should not see the end: {fw_acc} vs {acc}");
    // Keras' parameter counts: 2 × LSTM(8 → 12) and a Dense(24 → 2) on every step.
    let counts: Vec<usize> = Tagger::LAYERS.iter().map(|l| l.params).collect();
    assert_eq!(counts, vec![48, 2 * (4 * 12 * (8 + 12 + 1)), 24 * 2 + 2]);
    let names: Vec<String> = {
        let mut v = Vec::new();
        bi.visit_weights(&mut |n, _| v.push(n.to_string()));
        v
    };
    assert!(names.contains(&"bidirectional.backward_recurrent_kernel".to_string()), "{names:?}");
    assert!(names.contains(&"time_distributed.kernel".to_string()), "{names:?}");
}

functional! {
    /// Every sequence layer of kiln in one float model, for a whole-model gradient check.
    pub struct SequenceZoo {
        x = Input([5, 3]);
        a = Bidirectional(GRU(4, return_sequences = true), merge_mode = "ave")(x);
        b = TimeDistributed(Dense(6, activation = tanh))(a);
        c = SimpleRNN(5, return_sequences = true, go_backwards = true)(b);
        d = LayerNormalization()(c);
        e = MultiHeadAttention(num_heads = 2, key_dim = 3, use_causal_mask = true)(d, x);
        f = Bidirectional(LSTM(3), merge_mode = "concat")(e);
        out = Dense(2)(f);
        Model(x, out)
    }
}

#[test]
fn sequence_layers_have_correct_gradients_in_a_model() {
    let x: Vec<f32> = (0..3 * 15).map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0).collect();
    let mut m = SequenceZoo::new();
    kiln::testing::check_model(&mut m, &[&x], 3, 10, 3e-3).unwrap();
}

sequential! {
    /// Token ids to a summary vector: what a subclassed model holds as a field.
    pub struct OrderEncoder: Input([8], dtype = i32) {
        Embedding(6, 8),
        LSTM(16),
    }
}

/// The order task in the subclass style: the sequence layers live in a nested model, the
/// subclass takes the ids (`Ids<8>`) and adds a head of its own.
#[kiln::model]
pub struct OrderSubclass {
    encoder: OrderEncoder,
    head: kiln::Dense<16, 1, kiln::Sigmoid>,
}

#[kiln::call]
impl OrderSubclass {
    fn call(&self, ids: Ids<8>) -> Output<1> {
        let h = self.encoder(ids);
        self.head(h)
    }
}

#[test]
fn the_subclass_style_reads_token_ids_through_a_nested_model() {
    assert_eq!(OrderSubclass::INPUTS[0].dtype, kiln::DType::I32 { below: 6 });
    let (x, y) = order_task(1200, 8);
    let (xt, yt) = order_task(400, 9);
    let mut m = OrderSubclass::new();
    m.compile("binary_crossentropy", Adam::new(0.01), &["accuracy"]).unwrap();
    m.fit(&x, &y, Fit { epochs: 25, batch_size: 32, verbose: 0, ..Fit::default() }).unwrap();
    let acc = m.evaluate(&xt, &yt).unwrap()["accuracy"];
    assert!(acc >= 0.95, "subclass held-out accuracy {acc}");
    let mut bad = xt.clone();
    bad[[3, 2]] = 6;
    let e = m.predict(&bad).unwrap_err().to_string();
    assert!(e.contains("row 3, position [2] holds 6, not a token id in 0..6"), "{e}");
}

functional! {
    /// An encoder that hands on an LSTM's final state and cell (Keras' `return_state`), as one
    /// vector: the way a subclassed model reaches the layers' multi-output calls.
    pub struct StateEncoder {
        ids = Input([8], dtype = i32);
        e = Embedding(6, 8)(ids);
        (_, h, c) = LSTM(16, return_sequences = true, return_state = true)(e);
        states = Concatenate()([h, c]);
        Model(ids, states)
    }
}

/// A subclass whose field is the encoder above: its head reads the state and the cell.
#[kiln::model]
pub struct StateSubclass {
    encoder: StateEncoder,
    head: kiln::Dense<32, 1, kiln::Sigmoid>,
}

#[kiln::call]
impl StateSubclass {
    fn call(&self, ids: Ids<8>) -> Output<1> {
        let s = self.encoder(ids);
        self.head(s)
    }
}

#[test]
fn a_subclass_reads_final_states_through_a_nested_model() {
    let (x, y) = order_task(1200, 14);
    let (xt, yt) = order_task(400, 15);
    let mut m = StateSubclass::new();
    m.compile("binary_crossentropy", Adam::new(0.01), &["accuracy"]).unwrap();
    m.fit(&x, &y, Fit { epochs: 25, batch_size: 32, verbose: 0, ..Fit::default() }).unwrap();
    let acc = m.evaluate(&xt, &yt).unwrap()["accuracy"];
    assert!(acc >= 0.95, "subclass over final states: held-out accuracy {acc}");
    // The state half and the cell half both reach the head: 32 weights and a bias.
    assert_eq!(StateSubclass::LAYERS.iter().map(|l| l.params).sum::<usize>(), 48 + 4 * 16 * 25 + 33);
}

sequential! {
    /// The order task with input and recurrent dropout on the LSTM.
    pub struct OrderDropout: Input([8], dtype = i32) {
        Embedding(6, 8),
        LSTM(16, dropout = 0.2, recurrent_dropout = 0.2),
        Dense(1, activation = sigmoid),
    }
}

#[test]
fn recurrent_dropout_trains_and_is_off_in_inference() {
    let (x, y) = order_task(1200, 10);
    let (xt, yt) = order_task(400, 11);
    let mut m = OrderDropout::new();
    m.compile("binary_crossentropy", Adam::new(0.01), &["accuracy"]).unwrap();
    m.fit(&x, &y, Fit { epochs: 25, batch_size: 32, verbose: 0, ..Fit::default() }).unwrap();
    let acc = m.evaluate(&xt, &yt).unwrap()["accuracy"];
    assert!(acc >= 0.9, "held-out accuracy with dropout {acc}");
    assert_eq!(m.predict(&xt).unwrap(), m.predict(&xt).unwrap());
}

/// The order task with the sequence layers as fields of a subclassed model: ids `[8, 1]`, a
/// table, an LSTM over the steps, layer normalisation, the steps flattened into the head.
#[kiln::model]
pub struct OrderFields {
    embed: kiln::Embed<6, 8>,
    lstm: kiln::LstmSeq<8, 16>,
    norm: kiln::LayerNormalization<16>,
    head: kiln::Dense<128, 1, kiln::Sigmoid>,
}

#[kiln::call]
impl OrderFields {
    fn call(&self, ids: Ids<8, 1>) -> Output<1> {
        let e = self.embed(ids);
        let h = self.norm(self.lstm(e));
        self.head(flatten(h))
    }
}

#[test]
fn sequence_layers_as_subclass_fields() {
    assert_eq!(OrderFields::INPUTS[0].dtype, kiln::DType::I32 { below: 6 });
    let (x, y) = order_task(1200, 12);
    let (xt, yt) = order_task(400, 13);
    let (x, xt) = (x.insert_axis(kiln::ndarray::Axis(2)), xt.insert_axis(kiln::ndarray::Axis(2)));
    let mut m = OrderFields::new();
    m.compile("binary_crossentropy", Adam::new(0.01), &["accuracy"]).unwrap();
    m.fit(&x, &y, Fit { epochs: 25, batch_size: 32, verbose: 0, ..Fit::default() }).unwrap();
    let acc = m.evaluate(&xt, &yt).unwrap()["accuracy"];
    assert!(acc >= 0.95, "subclass fields held-out accuracy {acc}");
    let counts: Vec<usize> = OrderFields::LAYERS.iter().map(|l| l.params).collect();
    assert_eq!(counts, vec![48, 4 * 16 * (8 + 16 + 1), 32, 129]);
    let flat: Vec<f32> = (0..8).map(|i| (i % 5) as f32).collect();
    kiln::testing::check_model(&mut OrderFields::new(), &[&flat], 1, 8, 3e-3).unwrap();
}

#[kiln::model]
pub struct RecurrentFields {
    gru: kiln::GruSeq<3, 5>,
    rnn: kiln::SimpleRnnSeq<5, 4>,
    head: kiln::Dense<24, 2, kiln::Softmax>,
}

#[kiln::call]
impl RecurrentFields {
    fn call(&self, x: Input<6, 3>) -> Output<2> {
        let h = self.rnn(self.gru(x));
        self.head(flatten(h))
    }
}

#[test]
fn recurrent_fields_have_correct_gradients() {
    let x: Vec<f32> = (0..2 * 18).map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0).collect();
    kiln::testing::check_model(&mut RecurrentFields::new(), &[&x], 2, 10, 3e-3).unwrap();
    let counts: Vec<usize> = RecurrentFields::LAYERS.iter().map(|l| l.params).collect();
    assert_eq!(counts, vec![3 * 5 * (3 + 5 + 2), 4 * (5 + 4 + 1), 50]);
}

/// A transformer block as subclass fields: token embeddings, causal self-attention with a
/// residual connection and layer normalisation, a position-wise Dense (tanh: a ReLU's kink
/// would trip the finite differences), the steps flattened.
#[kiln::model]
pub struct BlockFields {
    embed: kiln::Embed<6, 8>,
    attention: kiln::SelfAttention<8, 2, 4, true>,
    norm: kiln::LayerNormalization<8>,
    ff: kiln::Dense<8, 8, kiln::Tanh>,
    head: kiln::Dense<64, 1, kiln::Sigmoid>,
}

#[kiln::call]
impl BlockFields {
    fn call(&self, ids: Ids<8, 1>) -> Output<1> {
        let e = self.embed(ids);
        let h = self.norm(e + self.attention(e));
        let f = self.ff(h);
        self.head(flatten(f))
    }
}

#[test]
fn an_attention_block_as_subclass_fields() {
    let flat: Vec<f32> = (0..2 * 8).map(|i| (i * 7 % 6) as f32).collect();
    kiln::testing::check_model(&mut BlockFields::new(), &[&flat], 2, 8, 3e-3).unwrap();
    let counts: Vec<usize> = BlockFields::LAYERS.iter().map(|l| l.params).collect();
    // Keras' count for MultiHeadAttention(2, 4) on width 8: 3 × (8·2·4 + 2·4) + 2·4·8 + 8.
    assert_eq!(counts[1], 3 * (8 * 8 + 8) + 64 + 8);
    let (x, y) = order_task(1200, 14);
    let (xt, yt) = order_task(400, 15);
    let (x, xt) = (x.insert_axis(kiln::ndarray::Axis(2)), xt.insert_axis(kiln::ndarray::Axis(2)));
    let mut m = BlockFields::new();
    m.compile("binary_crossentropy", Adam::new(0.01), &["accuracy"]).unwrap();
    m.fit(&x, &y, Fit { epochs: 25, batch_size: 32, verbose: 0, ..Fit::default() }).unwrap();
    let acc = m.evaluate(&xt, &yt).unwrap()["accuracy"];
    assert!(acc >= 0.9, "attention block held-out accuracy {acc}");
}

#[kiln::model]
pub struct BidirectionalFields {
    lstm: kiln::BiLstmSeq<3, 4>,
    gru: kiln::BiGruSeq<8, 2>,
    head: kiln::Dense<24, 2, kiln::Softmax>,
}

#[kiln::call]
impl BidirectionalFields {
    fn call(&self, x: Input<6, 3>) -> Output<2> {
        let h = self.gru(self.lstm(x));
        self.head(flatten(h))
    }
}

#[test]
fn bidirectional_fields_have_correct_gradients() {
    let x: Vec<f32> = (0..2 * 18).map(|i| ((i * 5 % 13) as f32 - 6.0) / 5.0).collect();
    kiln::testing::check_model(&mut BidirectionalFields::new(), &[&x], 2, 10, 3e-3).unwrap();
    let counts: Vec<usize> = BidirectionalFields::LAYERS.iter().map(|l| l.params).collect();
    assert_eq!(counts, vec![2 * 4 * 4 * (3 + 4 + 1), 2 * 3 * 2 * (8 + 2 + 2), 50]);
    let mut names = Vec::new();
    BidirectionalFields::new().visit_weights(&mut |n, _| names.push(n.to_string()));
    assert!(names.contains(&"lstm.backward_recurrent_kernel".to_string()), "{names:?}");
}

functional! {
    /// Keras' `return_state`: every recurrent layer's final states bound by name, used beside
    /// (and instead of) its output; `_` leaves one out.
    pub struct States {
        x = Input([5, 3]);
        (seq, h, c) = LSTM(4, return_sequences = true, return_state = true)(x);
        (g, s) = GRU(3, return_state = true)(seq);
        (_, r) = SimpleRNN(2, return_state = true, go_backwards = true)(seq);
        hc = Concatenate()([h, c, s, r]);
        out = Dense(2)(hc);
        Model(x, [out, g])
    }
}

#[test]
fn final_states_have_correct_gradients_in_a_model() {
    let x: Vec<f32> = (0..3 * 15).map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0).collect();
    let mut m = States::new();
    kiln::testing::check_model(&mut m, &[&x], 3, 10, 3e-3).unwrap();
}

#[test]
fn final_states_are_the_last_output_and_show_in_the_summary() {
    let mut m = States::new();
    let x = kiln::ndarray::Array3::from_shape_fn((2, 5, 3), |(i, t, f)| ((i + 2 * t + 3 * f) as f32 / 7.0).sin());
    let (out, g) = m.predict(&x).unwrap();
    assert_eq!((out.shape(), g.shape()), (&[2, 2][..], &[2, 3][..]));
    // A GRU's final state is its last output.
    let whole = kiln::Layer::output(&m.lstm);
    assert_eq!(whole.len(), 2 * (5 + 2) * 4);
    for i in 0..2 {
        let row = &whole[i * 28..(i + 1) * 28];
        assert_eq!(&row[16..20], &row[20..24], "h is the last step of the sequence");
    }
    let summary = m.summary_string();
    assert!(summary.contains("lstm (LSTM)"), "{summary}");
    assert!(summary.contains("[(None, 5, 4), (None, 4), (None, 4)]"), "{summary}");
    assert!(summary.contains("[(None, 3), (None, 3)]"), "{summary}");
    assert!(summary.contains("lstm[0][1]") && summary.contains("lstm[0][2]"), "{summary}");
    assert!(summary.contains("simple_rnn[0][1]") && !summary.contains("simple_rnn[0][0]"), "{summary}");
    assert!(!summary.contains("output_"), "the parts are not rows of their own:\n{summary}");
    let dot = std::env::temp_dir().join(format!("kiln-states-{}.dot", std::process::id()));
    kiln::plot_model(&m, &dot, &kiln::PlotOptions { show_shapes: true, ..kiln::PlotOptions::default() }).unwrap();
    let dot = std::fs::read_to_string(dot).unwrap();
    assert!(dot.contains("Output shape: [(None, 5, 4), (None, 4), (None, 4)]"), "{dot}");
    assert!(dot.contains("Input shape: [(None, 4), (None, 4), (None, 3), (None, 2)]"), "{dot}");
    assert_eq!(
        dot.matches(" -> ").count(),
        7,
        "x→lstm, lstm→gru, lstm→simple_rnn, three into concatenate, dense:\n{dot}"
    );
}

functional! {
    /// Masked steps leave the final state where the last real step put it, as in Keras.
    pub struct MaskedStates {
        ids = Input([6], dtype = i32);
        e = Embedding(5, 3, mask_zero = true)(ids);
        (last, h, c) = LSTM(4, return_state = true)(e);
        both = Concatenate()([last, h, c]);
        out = Dense(1)(both);
        Model(ids, out)
    }
}

#[test]
fn masked_final_states_have_correct_gradients() {
    let ids: Vec<f32> = [1, 2, 3, 0, 0, 0, 4, 1, 2, 3, 4, 0, 2, 0, 0, 0, 0, 0].iter().map(|&v| v as f32).collect();
    let mut m = MaskedStates::new();
    kiln::testing::check_model(&mut m, &[&ids], 3, 10, 3e-3).unwrap();
    let out = kiln::Layer::output(&m.lstm);
    for i in 0..3 {
        let row = &out[i * 12..(i + 1) * 12];
        assert_eq!(&row[..4], &row[4..8], "the final state is the last output under a mask");
    }
}

functional! {
    /// The README's example of `return_state` and `attention_mask`.
    pub struct Encoder {
        x = Input([24, 3]);
        allowed = Input([24, 24]);
        (seq, h, c) = LSTM(32, return_sequences = true, return_state = true)(x);
        a = MultiHeadAttention(num_heads = 2, key_dim = 16)(seq, seq, attention_mask = allowed);
        (_, s) = GRU(16, return_state = true)(a);
        out = Dense(1)(Concatenate()([h, c, s]));
        Model([x, allowed], out)
    }
}

/// The README's encoder trains: a causal mask, and a target that is the series' last value.
#[test]
fn the_readme_encoder_trains_with_final_states_and_an_attention_mask() {
    use kiln::ndarray::Array3;
    let n = 64;
    let x = Array3::from_shape_fn((n, 24, 3), |(i, t, f)| ((i * 3 + t + 2 * f) as f32 * 0.37).sin());
    let causal = Array3::from_shape_fn((n, 24, 24), |(_, r, c)| (c <= r) as u8 as f32);
    let y = Array2::from_shape_fn((n, 1), |(i, _)| x[[i, 23, 0]]);
    let mut m = Encoder::with_seed(3);
    m.compile("mse", "adam", &[]).unwrap();
    let before = m.evaluate((&x, &causal), &y).unwrap()["loss"];
    m.fit((&x, &causal), &y, Fit { epochs: 30, batch_size: 16, verbose: 0, ..Fit::default() }).unwrap();
    let after = m.evaluate((&x, &causal), &y).unwrap()["loss"];
    assert!(after < before / 4.0, "loss {before} -> {after}");
    let summary = m.summary_string();
    assert!(summary.contains("[(None, 24, 32), (None, 32), (None, 32)]"), "{summary}");
    assert!(summary.contains("allowed[0][0]"), "{summary}");
}

functional! {
    /// One LSTM with return_state applied to two sequences (its weights shared, each use's
    /// states bound by name).
    pub struct SharedStates {
        a = Input([4, 3]);
        b = Input([4, 3]);
        lstm = LSTM(5, return_state = true);
        (_, ha, ca) = lstm(a);
        (last, hb, _) = lstm(b);
        m = Concatenate()([ha, ca, last, hb]);
        out = Dense(2)(m);
        Model([a, b], out)
    }
}

#[test]
fn a_shared_recurrent_layer_gives_each_use_its_states() {
    let a: Vec<f32> = (0..3 * 12).map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0).collect();
    let b: Vec<f32> = (0..3 * 12).map(|i| ((i * 5 % 13) as f32 - 6.0) / 5.0).collect();
    let mut m = SharedStates::new();
    kiln::testing::check_model(&mut m, &[&a, &b], 3, 10, 3e-3).unwrap();
    let summary = m.summary_string();
    assert!(summary.contains("lstm[0][1]") && summary.contains("lstm[1][0]"), "{summary}");
}

functional! {
    /// Sequence to sequence (Keras' `initial_state`): an encoder reads the tokens and hands its
    /// final state and cell to a decoder whose own input is only the position, so every token it
    /// writes has come through that hand-over.
    pub struct Copier {
        ids = Input([5], dtype = i32);
        positions = Input([5, 5]);
        e = Embedding(5, 8)(ids);
        (_, h, c) = LSTM(32, return_state = true)(e);
        d = LSTM(32, return_sequences = true)(positions, initial_state = [h, c]);
        y = Dense(5, activation = softmax)(d);
        Model([ids, positions], y)
    }
}

/// `n` sequences of 5 tokens in 0..5, the one-hot positions every sample's decoder reads, and
/// the tokens as labels.
fn copy_task(n: usize, seed: u64) -> (Array2<i32>, kiln::ndarray::Array3<f32>, Array2<i32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let ids = Array2::from_shape_fn((n, 5), |_| rng.random_range(0..5));
    let positions = kiln::ndarray::Array3::from_shape_fn((n, 5, 5), |(_, t, k)| (t == k) as u8 as f32);
    (ids.clone(), positions, ids)
}

#[test]
fn a_decoder_started_from_the_encoders_states_copies_the_sequence() {
    let (ids, pos, y) = copy_task(2000, 16);
    let (ids_t, pos_t, y_t) = copy_task(400, 17);
    let mut m = Copier::new();
    m.compile("sparse_categorical_crossentropy", Adam::new(0.01), &["accuracy"]).unwrap();
    m.fit((&ids, &pos), &y, Fit { epochs: 20, batch_size: 32, verbose: 0, ..Fit::default() }).unwrap();
    // One token in five by chance: the decoder's input says nothing about the tokens.
    let acc = m.evaluate((&ids_t, &pos_t), &y_t).unwrap()["accuracy"];
    assert!(acc >= 0.9, "per-token accuracy of the copy {acc}");
    let s = m.summary_string();
    assert!(s.contains("lstm_1 (LSTM)"), "{s}");
    for want in ["positions[0][0]", "lstm[0][1]", "lstm[0][2]"] {
        assert!(s.contains(want), "{want} missing:\n{s}");
    }
}

functional! {
    /// Masked steps carry the state, from the first step on: a sequence of padding alone leaves
    /// the initial state as it was given (Keras' semantics).
    pub struct MaskedFromState {
        ids = Input([4], dtype = i32);
        h = Input([3]);
        c = Input([3]);
        e = Embedding(5, 2, mask_zero = true)(ids);
        (out, hf, cf) = LSTM(3, return_state = true)(e, initial_state = [h, c]);
        Model([ids, h, c], [out, hf, cf])
    }
}

#[test]
fn padding_carries_the_initial_state() {
    let mut m = MaskedFromState::new();
    let ids = kiln::ndarray::arr2(&[[0, 0, 0, 0], [0, 3, 0, 2]]);
    let h = kiln::ndarray::arr2(&[[0.5f32, -0.25, 0.125], [0.1, 0.2, 0.3]]);
    let c = kiln::ndarray::arr2(&[[1.5f32, -2.0, 0.75], [0.0, 1.0, -1.0]]);
    let (out, hf, cf) = m.predict((&ids, &h, &c)).unwrap();
    // All padding: the output and final states are the initial ones.
    assert_eq!(out.row(0), h.row(0));
    assert_eq!(hf.row(0), h.row(0));
    assert_eq!(cf.row(0), c.row(0));
    // Real steps move the state away from it.
    assert_ne!(out.row(1), h.row(1));
}

functional! {
    /// A bidirectional encoder's final states (Keras' `[out, h_fwd, c_fwd, h_bwd, c_bwd]`),
    /// joined and handed to a decoder twice as wide.
    pub struct BiSeq2Seq {
        x = Input([4, 3]);
        steps = Input([3, 2]);
        (seq, fh, fc, bh, bc) = Bidirectional(LSTM(3, return_sequences = true, return_state = true))(x);
        h = Concatenate()([fh, bh]);
        c = Concatenate()([fc, bc]);
        d = LSTM(6, return_sequences = true)(steps, initial_state = [h, c]);
        flat = Flatten()(d);
        pooled = GlobalAveragePooling1D()(seq);
        joined = Concatenate()([flat, pooled]);
        y = Dense(2, activation = softmax)(joined);
        Model([x, steps], y)
    }
}

#[test]
fn a_bidirectional_encoders_states_start_a_decoder() {
    let mut m = BiSeq2Seq::with_seed(3);
    let s = m.summary_string();
    assert!(s.contains("[(None, 4, 6), (None, 3), (None, 3), (None, 3), (None, 3)]"), "{s}");
    let x: Vec<f32> = (0..2 * 12).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
    let steps: Vec<f32> = (0..2 * 6).map(|i| ((i * 5 % 11) as f32 - 5.0) / 6.0).collect();
    kiln::testing::check_model(&mut m, &[&x, &steps], 2, 8, 3e-3).unwrap();
}

functional! {
    /// Both directions of a decoder start from the matching direction of the encoder: Keras'
    /// `initial_state = [fh, bh]` on a Bidirectional GRU.
    pub struct BiToBi {
        x = Input([4, 3]);
        steps = Input([3, 2]);
        (_, fh, bh) = Bidirectional(GRU(3, return_state = true))(x);
        d = Bidirectional(GRU(3, return_sequences = true), merge_mode = "sum")(steps, initial_state = [fh, bh]);
        flat = Flatten()(d);
        y = Dense(2, activation = softmax)(flat);
        Model([x, steps], y)
    }
}

#[test]
fn a_bidirectional_decoder_starts_from_both_directions() {
    let mut m = BiToBi::with_seed(4);
    let s = m.summary_string();
    for want in ["[(None, 6), (None, 3), (None, 3)]", "bidirectional[0][1]", "bidirectional[0][2]"] {
        assert!(s.contains(want), "{want} missing:\n{s}");
    }
    let x: Vec<f32> = (0..2 * 12).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
    let steps: Vec<f32> = (0..2 * 6).map(|i| ((i * 5 % 11) as f32 - 5.0) / 6.0).collect();
    kiln::testing::check_model(&mut m, &[&x, &steps], 2, 8, 3e-3).unwrap();
}

/// A recurrent field's last step (`last_step`): Keras' LSTM without `return_sequences`.
#[kiln::model]
pub struct LastState {
    lstm: kiln::LstmSeq<3, 5>,
    head: kiln::Dense<5, 2, kiln::Softmax>,
}

#[kiln::call]
impl LastState {
    fn call(&self, x: Input<6, 3>) -> Output<2> {
        self.head(last_step(self.lstm(x)))
    }
}

sequential! {
    /// The same model in the sequential style.
    pub struct LastStateSeq: [6, 3] {
        LSTM(5),
        Dense(2, activation = softmax),
    }
}

#[test]
fn last_step_of_a_recurrent_field_is_the_last_state() {
    let mut sub = LastState::with_seed(1);
    let mut seq = LastStateSeq::with_seed(2);
    kiln::testing::copy_weights(&sub, &mut seq);
    let x = kiln::ndarray::Array3::from_shape_fn((4, 6, 3), |(n, t, f)| ((n * 7 + t * 3 + f) % 11) as f32 / 5.0 - 1.0);
    assert_eq!(sub.predict(&x).unwrap(), seq.predict(&x).unwrap());
    let flat: Vec<f32> = x.iter().copied().collect();
    kiln::testing::check_model(&mut sub, &[&flat], 4, 8, 3e-3).unwrap();
}

/// Sequence to sequence in the subclass style: an encoder's last state starts a decoder
/// (`self.dec(steps, h)`, Keras' `initial_state`).
#[kiln::model]
pub struct GruSeq2Seq {
    enc: kiln::GruSeq<3, 4>,
    dec: kiln::GruSeq<2, 4>,
    head: kiln::Dense<4, 2, kiln::Softmax>,
}

#[kiln::call]
impl GruSeq2Seq {
    fn call(&self, x: Input<5, 3>, steps: Input<3, 2>) -> Output<3, 2> {
        let h = last_step(self.enc(x));
        self.head(self.dec(steps, h))
    }
}

functional! {
    /// The same model in the functional style.
    pub struct GruSeq2SeqFun {
        x = Input([5, 3]);
        steps = Input([3, 2]);
        h = GRU(4)(x);
        d = GRU(4, return_sequences = true)(steps, initial_state = [h]);
        y = Dense(2, activation = softmax)(d);
        Model([x, steps], y)
    }
}

#[test]
fn a_subclassed_decoder_starts_from_the_encoders_last_state() {
    let mut sub = GruSeq2Seq::with_seed(1);
    let mut fun = GruSeq2SeqFun::with_seed(2);
    kiln::testing::copy_weights(&sub, &mut fun);
    let x = kiln::ndarray::Array3::from_shape_fn((3, 5, 3), |(n, t, f)| ((n * 7 + t * 3 + f) % 11) as f32 / 5.0 - 1.0);
    let steps = kiln::ndarray::Array3::from_shape_fn((3, 3, 2), |(n, t, f)| ((n + t * 5 + f) % 7) as f32 / 3.0 - 1.0);
    assert_eq!(sub.predict((&x, &steps)).unwrap(), fun.predict((&x, &steps)).unwrap());
    let (xf, sf): (Vec<f32>, Vec<f32>) = (x.iter().copied().collect(), steps.iter().copied().collect());
    kiln::testing::check_model(&mut sub, &[&xf, &sf], 3, 8, 3e-3).unwrap();
}
