//! SimpleRNN, LSTM and GRU: finite-difference checks of every weight and input gradient over
//! several steps (last state and whole sequence, forwards and backwards, both GRU variants),
//! Keras 3 parity on committed values (`examples/keras/recurrent_reference.py`), and models that
//! use them in `sequential!` and `functional!`.

use kiln::layers::{Cell, Gate};
use kiln::{Layer, Recurrent, RecurrentConfig};
use rand::SeedableRng;

fn config(cell: Cell, return_sequences: bool, go_backwards: bool) -> RecurrentConfig {
    RecurrentConfig {
        cell,
        steps: 4,
        features: 3,
        units: 5,
        activation: Gate::Tanh,
        recurrent_activation: Gate::Sigmoid,
        use_bias: true,
        return_sequences,
        return_state: false,
        go_backwards,
        dropout: 0.0,
        recurrent_dropout: 0.0,
    }
}

const CELLS: [Cell; 4] = [Cell::Simple, Cell::Lstm, Cell::Gru { reset_after: true }, Cell::Gru { reset_after: false }];

#[test]
fn recurrent_gradients_match_finite_differences() {
    let n = 3;
    let x: Vec<f32> = (0..n * 4 * 3).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
    for cell in CELLS {
        for (seq, back) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut rng = rand::rngs::StdRng::seed_from_u64(5);
            let mut l = Recurrent::new(config(cell, seq, back), &mut rng);
            // Non-zero biases, so every bias path is exercised.
            if let Some(b) = &mut l.bias {
                b.value.iter_mut().enumerate().for_each(|(i, v)| *v += ((i % 7) as f32 - 3.0) / 10.0);
            }
            kiln::testing::check_layer(&mut l, &[&x], n, 12, 3e-3)
                .unwrap_or_else(|e| panic!("{cell:?} return_sequences={seq} go_backwards={back}:\n{e}"));
        }
    }
}

/// A batch of 9 runs as two chunks of samples (6 and 3), one of 100 as three: the split changes
/// nothing.
#[test]
fn recurrent_gradients_match_finite_differences_on_split_batches() {
    let n = 100;
    let x: Vec<f32> = (0..n * 4 * 3).map(|i| ((i * 5 % 17) as f32 - 8.0) / 7.0).collect();
    let mut l = Recurrent::new(config(Cell::Lstm, true, true), &mut rand::rngs::StdRng::seed_from_u64(8));
    kiln::testing::check_layer(&mut l, &[&x], n, 6, 3e-3).unwrap();
    let n = 9;
    let x: Vec<f32> = (0..n * 4 * 3).map(|i| ((i * 5 % 17) as f32 - 8.0) / 7.0).collect();
    for cell in CELLS {
        for seq in [false, true] {
            let mut l = Recurrent::new(config(cell, seq, seq), &mut rand::rngs::StdRng::seed_from_u64(8));
            kiln::testing::check_layer(&mut l, &[&x], n, 8, 3e-3)
                .unwrap_or_else(|e| panic!("{cell:?} return_sequences={seq}:\n{e}"));
        }
    }
}

#[test]
fn recurrent_output_shapes_and_last_state() {
    let n = 2;
    let x: Vec<f32> = (0..n * 4 * 3).map(|i| (i as f32 / 10.0).sin()).collect();
    for cell in CELLS {
        let rng = || rand::rngs::StdRng::seed_from_u64(1);
        let mut seq = Recurrent::new(config(cell, true, false), &mut rng());
        let mut last = Recurrent::new(config(cell, false, false), &mut rng());
        let mut stream = kiln::Stream::new(0);
        seq.forward(&[&x], &mut kiln::Ctx::new(n, false, &mut stream));
        last.forward(&[&x], &mut kiln::Ctx::new(n, false, &mut stream));
        assert_eq!(seq.output().len(), n * 4 * 5);
        assert_eq!(last.output().len(), n * 5);
        // The last state is the sequence's last step.
        for i in 0..n {
            assert_eq!(&seq.output()[(i * 4 + 3) * 5..(i * 4 + 4) * 5], &last.output()[i * 5..(i + 1) * 5]);
        }
    }
}

fn fixture(key: &str) -> Vec<f32> {
    kiln::testing::reference(include_str!("../fixtures/keras/recurrent.txt"), key)
        .unwrap_or_else(|| panic!("{key} missing from the fixture"))
}

use kiln::testing::assert_close as close;

/// Forward, every gradient of sum(out ⊙ dy), and one Adam(0.01) step, against Keras 3.
fn keras_case(case: &str, layer: impl Layer, x: &[f32], n: usize) {
    keras_case_inputs(case, layer, &[x], &["dx"], n)
}

/// The same with several inputs (a sequence, then Keras' `initial_state`), the gradient of
/// input `k` compared with the fixture's `<case>.<grads[k]>`.
fn keras_case_inputs(case: &str, mut layer: impl Layer, xs: &[&[f32]], grads: &[&str], n: usize) {
    let names: Vec<String> = {
        let mut v = Vec::new();
        layer.visit_params(&mut |name, _| v.push(name.to_string()));
        v
    };
    let mut k = 0;
    layer.visit_params_mut(&mut |p| {
        p.value.copy_from_slice(&fixture(&format!("{case}.{}", names[k])));
        k += 1;
    });
    let mut stream = kiln::Stream::new(0);
    let mut ctx = kiln::Ctx::new(n, true, &mut stream);
    layer.forward(xs, &mut ctx);
    close(&format!("{case}.out"), layer.output(), &fixture(&format!("{case}.out")), 1e-5);
    let opts = kiln::BackwardOpts { input_grad: true, accumulate: false, fused_output: false };
    layer.backward(xs, &fixture(&format!("{case}.dy")), &mut ctx, opts);
    if !case.starts_with("embedding") {
        for (k, g) in grads.iter().enumerate() {
            close(&format!("{case}.{g}"), layer.input_grad(k), &fixture(&format!("{case}.{g}")), 1e-5);
        }
    }
    let mut adam = kiln::Adam::new(0.01);
    kiln::Optimizer::begin_step(&mut adam);
    let mut k = 0;
    layer.visit_params_mut(&mut |p| {
        let name = &names[k];
        close(&format!("{case}.d{name}"), &p.grad, &fixture(&format!("{case}.d{name}")), 1e-5);
        let grad = p.grad.clone();
        kiln::Optimizer::update(&mut adam, k, &mut p.value, &grad);
        // Adam's first step is lr · g / (|g| + ε): for a gradient within rounding of zero it
        // amplifies the rounding, so those entries are compared with the step size instead.
        let want = fixture(&format!("{case}.adam.{name}"));
        let kg = fixture(&format!("{case}.d{name}"));
        for (j, (g, w)) in p.value.iter().zip(&want).enumerate() {
            let tol = if kg[j].abs() > 1e-4 { 1e-5 * w.abs().max(1.0) } else { 0.01 };
            assert!((g - w).abs() <= tol, "{case}.adam.{name}[{j}]: kiln {g}, Keras {w} (gradient {})", kg[j]);
        }
        k += 1;
    });
}

#[test]
fn recurrent_layers_match_keras() {
    let cases = [
        ("simple", Cell::Simple, false, false),
        ("simple_seq_back", Cell::Simple, true, true),
        ("lstm", Cell::Lstm, false, false),
        ("lstm_seq", Cell::Lstm, true, false),
        ("lstm_seq_back", Cell::Lstm, true, true),
        ("gru", Cell::Gru { reset_after: true }, false, false),
        ("gru_v1", Cell::Gru { reset_after: false }, false, false),
        ("gru_seq_back", Cell::Gru { reset_after: true }, true, true),
        ("gru_v1_seq", Cell::Gru { reset_after: false }, true, false),
    ];
    for (case, cell, seq, back) in cases {
        let cfg = RecurrentConfig { steps: 5, units: 4, ..config(cell, seq, back) };
        let layer = Recurrent::new(cfg, &mut rand::rngs::StdRng::seed_from_u64(0));
        keras_case(case, layer, &fixture(&format!("{case}.x")), 2);
    }
}

/// `return_state`: each sample's output, then its final state (and an LSTM's cell), against
/// Keras' `[out, h, c]` packed the same way.
#[test]
fn final_states_match_keras() {
    let cases = [
        ("simple_state_seq", Cell::Simple, true, false),
        ("lstm_state", Cell::Lstm, false, false),
        ("lstm_state_seq_back", Cell::Lstm, true, true),
        ("gru_state_seq", Cell::Gru { reset_after: true }, true, false),
        ("gru_v1_state", Cell::Gru { reset_after: false }, false, false),
    ];
    for (case, cell, seq, back) in cases {
        let cfg = RecurrentConfig { steps: 5, units: 4, return_state: true, ..config(cell, seq, back) };
        let layer = Recurrent::new(cfg, &mut rand::rngs::StdRng::seed_from_u64(0));
        keras_case(case, layer, &fixture(&format!("{case}.x")), 2);
    }
}

#[test]
fn final_state_gradients_match_finite_differences() {
    let n = 3;
    let x: Vec<f32> = (0..n * 4 * 3).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
    for cell in CELLS {
        for (seq, back) in [(false, false), (true, true)] {
            let cfg = RecurrentConfig { return_state: true, ..config(cell, seq, back) };
            let mut l = Recurrent::new(cfg, &mut rand::rngs::StdRng::seed_from_u64(5));
            let per = (if seq { 4 } else { 1 } + if cell == Cell::Lstm { 2 } else { 1 }) * 5;
            assert_eq!(cfg.output_len(), per);
            kiln::testing::check_layer(&mut l, &[&x], n, 12, 3e-3)
                .unwrap_or_else(|e| panic!("{cell:?} return_sequences={seq} go_backwards={back}:\n{e}"));
        }
    }
}

/// Keras' `initial_state`: the first state (and an LSTM's cell) given as inputs 1 (and 2), their
/// gradients against Keras'.
#[test]
fn initial_states_match_keras() {
    let cases = [
        ("simple_init_seq", Cell::Simple, true, false, false),
        ("lstm_init", Cell::Lstm, false, false, false),
        ("lstm_init_seq_back_state", Cell::Lstm, true, true, true),
        ("gru_init_seq", Cell::Gru { reset_after: true }, true, false, false),
        ("gru_v1_init", Cell::Gru { reset_after: false }, false, false, false),
    ];
    for (case, cell, seq, back, state) in cases {
        let cfg = RecurrentConfig { steps: 5, units: 4, return_state: state, ..config(cell, seq, back) };
        let layer = Recurrent::new(cfg, &mut rand::rngs::StdRng::seed_from_u64(0));
        let x = fixture(&format!("{case}.x"));
        let h0 = fixture(&format!("{case}.h0"));
        if cell == Cell::Lstm {
            let c0 = fixture(&format!("{case}.c0"));
            keras_case_inputs(case, layer, &[&x, &h0, &c0], &["dx", "dh0", "dc0"], 2);
        } else {
            keras_case_inputs(case, layer, &[&x, &h0], &["dx", "dh0"], 2);
        }
    }
}

#[test]
fn initial_state_gradients_match_finite_differences() {
    let n = 3;
    let x: Vec<f32> = (0..n * 4 * 3).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
    let h0: Vec<f32> = (0..n * 5).map(|i| ((i * 5 % 11) as f32 - 5.0) / 6.0).collect();
    let c0: Vec<f32> = (0..n * 5).map(|i| ((i * 3 % 7) as f32 - 3.0) / 4.0).collect();
    for cell in CELLS {
        // Forward and backward, a sequence and the last state, without and with recurrent
        // dropout (whose masks apply to the initial state too, as in Keras).
        for (seq, back, rdrop) in [(false, false, 0.0), (true, true, 0.0), (true, false, 0.3)] {
            let cfg = RecurrentConfig { recurrent_dropout: rdrop, ..config(cell, seq, back) };
            let mut l = Recurrent::new(cfg, &mut rand::rngs::StdRng::seed_from_u64(5));
            let xs: Vec<&[f32]> = if cell == Cell::Lstm { vec![&x, &h0, &c0] } else { vec![&x, &h0] };
            kiln::testing::check_layer(&mut l, &xs, n, 12, 3e-3).unwrap_or_else(|e| {
                panic!("{cell:?} return_sequences={seq} go_backwards={back} recurrent_dropout={rdrop}:\n{e}")
            });
        }
    }
}

#[test]
fn bidirectional_layers_match_keras() {
    use kiln::layers::MergeMode;
    let cases = [
        ("bidi_lstm_seq", Cell::Lstm, true, MergeMode::Concat),
        ("bidi_gru_sum", Cell::Gru { reset_after: true }, false, MergeMode::Sum),
        ("bidi_rnn_mul_seq", Cell::Simple, true, MergeMode::Mul),
    ];
    for (case, cell, seq, mode) in cases {
        let cfg = RecurrentConfig { steps: 5, units: 4, ..config(cell, seq, false) };
        let rng = || rand::rngs::StdRng::seed_from_u64(0);
        let layer = kiln::Bidirectional::new(Recurrent::new(cfg, &mut rng()), Recurrent::new(cfg, &mut rng()), mode);
        keras_case(case, layer, &fixture(&format!("{case}.x")), 2);
    }
}

/// Bidirectional with `return_state`: the merged output, then the forward direction's final
/// states, then the backward one's, against Keras' `[out, h_fwd, c_fwd, h_bwd, c_bwd]`.
#[test]
fn bidirectional_final_states_match_keras() {
    use kiln::layers::MergeMode;
    let cases = [
        ("bidi_lstm_state_seq", Cell::Lstm, true, MergeMode::Concat),
        ("bidi_gru_state_ave", Cell::Gru { reset_after: true }, false, MergeMode::Ave),
    ];
    for (case, cell, seq, mode) in cases {
        let cfg = RecurrentConfig { steps: 5, units: 4, return_state: true, ..config(cell, seq, false) };
        let rng = || rand::rngs::StdRng::seed_from_u64(0);
        let layer = kiln::Bidirectional::new(Recurrent::new(cfg, &mut rng()), Recurrent::new(cfg, &mut rng()), mode);
        keras_case(case, layer, &fixture(&format!("{case}.x")), 2);
    }
}

/// Bidirectional with `initial_state`: the forward direction starts from the first half of the
/// states given, the backward one from the second (Keras' split).
#[test]
fn bidirectional_initial_states_match_keras() {
    use kiln::layers::MergeMode;
    let lstm = ["fh0", "fc0", "bh0", "bc0"];
    let gru = ["fh0", "bh0"];
    let cases: [(&str, Cell, bool, MergeMode, &[&str]); 2] = [
        ("bidi_lstm_init_seq", Cell::Lstm, true, MergeMode::Concat, &lstm),
        ("bidi_gru_init_sum", Cell::Gru { reset_after: true }, false, MergeMode::Sum, &gru),
    ];
    for (case, cell, seq, mode, states) in cases {
        let cfg = RecurrentConfig { steps: 5, units: 4, ..config(cell, seq, false) };
        let rng = || rand::rngs::StdRng::seed_from_u64(0);
        let layer = kiln::Bidirectional::new(Recurrent::new(cfg, &mut rng()), Recurrent::new(cfg, &mut rng()), mode);
        let values: Vec<Vec<f32>> =
            std::iter::once("x").chain(states.iter().copied()).map(|n| fixture(&format!("{case}.{n}"))).collect();
        let xs: Vec<&[f32]> = values.iter().map(|v| &v[..]).collect();
        let grads: Vec<String> =
            std::iter::once("dx".to_string()).chain(states.iter().map(|n| format!("d{n}"))).collect();
        let grads: Vec<&str> = grads.iter().map(|g| &g[..]).collect();
        keras_case_inputs(case, layer, &xs, &grads, 2);
    }
}

#[test]
fn bidirectional_gradients_match_finite_differences() {
    use kiln::layers::MergeMode;
    let n = 3;
    let x: Vec<f32> = (0..n * 4 * 3).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
    for (mode, seq) in
        [(MergeMode::Concat, true), (MergeMode::Ave, false), (MergeMode::Mul, true), (MergeMode::Sum, true)]
    {
        // Without and with the final states (return_state), of an LSTM and a GRU.
        for (cell, state) in [(Cell::Lstm, false), (Cell::Lstm, true), (Cell::Gru { reset_after: true }, true)] {
            let cfg = RecurrentConfig { return_state: state, ..config(cell, seq, false) };
            let mut rng = rand::rngs::StdRng::seed_from_u64(2);
            let (f, b) = (Recurrent::new(cfg, &mut rng), Recurrent::new(cfg, &mut rng));
            let mut l = kiln::Bidirectional::new(f, b, mode);
            kiln::testing::check_layer(&mut l, &[&x], n, 8, 3e-3)
                .unwrap_or_else(|e| panic!("{mode:?} {cell:?} return_state={state}:\n{e}"));
            // Started from given states: the forward direction's, then the backward one's.
            let given = if cell == Cell::Lstm { 4 } else { 2 };
            let states: Vec<Vec<f32>> =
                (0..given).map(|k| (0..n * 5).map(|i| ((i * 5 + k * 3) % 11) as f32 / 6.0 - 0.8).collect()).collect();
            let mut xs: Vec<&[f32]> = vec![&x];
            xs.extend(states.iter().map(|s| &s[..]));
            kiln::testing::check_layer(&mut l, &xs, n, 8, 3e-3)
                .unwrap_or_else(|e| panic!("{mode:?} {cell:?} return_state={state} from initial states:\n{e}"));
        }
    }
}

#[test]
fn embedding_matches_keras() {
    let layer = kiln::Embedding::new(7, 4, &mut rand::rngs::StdRng::seed_from_u64(0));
    keras_case("embedding", layer, &fixture("embedding.x"), 2);
}

#[test]
fn embedding_gradients_match_finite_differences() {
    // Ids sit a quarter away from integers so that the nudged inputs still select the same rows
    // (the gradient with respect to an id is zero, as the layer reports).
    let ids: Vec<f32> = [0, 3, 3, 6, 1, 2, 3, 5, 0, 0].iter().map(|&i| i as f32 + 0.25).collect();
    let mut l = kiln::Embedding::new(7, 4, &mut rand::rngs::StdRng::seed_from_u64(2));
    kiln::testing::check_layer(&mut l, &[&ids], 2, 28, 3e-3).unwrap();
}

/// `recurrent_dropout` (with and without `dropout`): one mask per sample and gate on the state
/// entering the recurrent products (and on the inputs), as Keras' implementation 1; gradients
/// through every mask on a split batch, and nothing dropped in inference.
#[test]
fn recurrent_dropout_on_the_state() {
    let n = 9;
    let x: Vec<f32> = (0..n * 4 * 3).map(|i| ((i * 5 % 17) as f32 - 8.0) / 7.0).collect();
    for cell in CELLS {
        for dropout in [0.0, 0.3] {
            for (seq, back) in [(true, false), (false, true)] {
                let cfg = RecurrentConfig { dropout, recurrent_dropout: 0.4, ..config(cell, seq, back) };
                let mut l = Recurrent::new(cfg, &mut rand::rngs::StdRng::seed_from_u64(8));
                kiln::testing::check_layer(&mut l, &[&x], n, 8, 3e-3)
                    .unwrap_or_else(|e| panic!("{cell:?} dropout {dropout} seq {seq}:\n{e}"));
                let mut l = Recurrent::new(cfg, &mut rand::rngs::StdRng::seed_from_u64(8));
                let mut plain = Recurrent::new(config(cell, seq, back), &mut rand::rngs::StdRng::seed_from_u64(8));
                let mut stream = kiln::Stream::new(0);
                l.forward(&[&x], &mut kiln::Ctx::new(n, false, &mut stream));
                plain.forward(&[&x], &mut kiln::Ctx::new(n, false, &mut stream));
                assert_eq!(l.output(), plain.output(), "{cell:?}: inference drops nothing");
                l.forward(&[&x], &mut kiln::Ctx::new(n, true, &mut stream));
                assert_ne!(l.output(), plain.output(), "{cell:?}: training drops the state");
            }
        }
    }
}

/// `dropout`: gradients through the dropped inputs (one mask per sample for every step), on a
/// batch split in two chunks; and nothing is dropped in inference.
#[test]
fn recurrent_dropout_on_inputs() {
    let n = 9;
    let x: Vec<f32> = (0..n * 4 * 3).map(|i| ((i * 5 % 17) as f32 - 8.0) / 7.0).collect();
    for cell in CELLS {
        let cfg = RecurrentConfig { dropout: 0.4, ..config(cell, true, false) };
        let mut l = Recurrent::new(cfg, &mut rand::rngs::StdRng::seed_from_u64(8));
        kiln::testing::check_layer(&mut l, &[&x], n, 8, 3e-3).unwrap_or_else(|e| panic!("{cell:?}:\n{e}"));
        // A fresh copy: the finite differences leave the weights an ulp or so from where they were.
        let mut l = Recurrent::new(cfg, &mut rand::rngs::StdRng::seed_from_u64(8));
        let mut plain = Recurrent::new(config(cell, true, false), &mut rand::rngs::StdRng::seed_from_u64(8));
        let mut stream = kiln::Stream::new(0);
        l.forward(&[&x], &mut kiln::Ctx::new(n, false, &mut stream));
        plain.forward(&[&x], &mut kiln::Ctx::new(n, false, &mut stream));
        assert_eq!(l.output(), plain.output(), "{cell:?}: inference drops nothing");
        l.forward(&[&x], &mut kiln::Ctx::new(n, true, &mut stream));
        assert_ne!(l.output(), plain.output(), "{cell:?}: training drops inputs");
    }
}
