//! The generated `infer` (no heap, no standard library) of models with user math between their
//! layers — fused element-wise chains, broadcasts, reductions, softmax along an axis, slices and
//! concatenations, products, gathers and one-hot rows — against `predict` on the same embedded weights. Its `core` functions (`exp`,
//! `ln`, `sqrt`, powers) are within a few units in the last place of the standard library's,
//! which training uses.

use kiln::ndarray::Array3;
use kiln::prelude::*;

/// The same graph twice: trainable (to write the fixture) and with its weights compiled in.
macro_rules! graph {
    ($name:ident $(, #[$attr:meta])?) => {
        functional! {
            $(#[$attr])?
            pub struct $name {
                x = Input([4, 6]);
                h = Dense(6, activation = tanh)(x);
                s = softmax(h * 2.0 - 1.0, axis = 1);
                m = mean(s * h, axis = 1, keepdims = true);
                c = sqrt(square(h - m) + 1e-3) + exp(-0.5 * h);
                l = log_softmax(c, axis = -1) + logsumexp(h, axis = 2, keepdims = true);
                p = pow(abs(h) + 0.5, 1.5) / (1.0 + maximum(h, 0.1));
                q = matmul(s, transpose(h, [0, 2, 1])) / 4.0 + matmul(h, p, transpose_b = true);
                j = concatenate([slice(l, axis = -1, start = 0, end = 2), p, q], axis = -1);
                out = Dense(3, activation = softmax)(Flatten()(j));
                Model(x, [j, out])
            }
        }
    };
}

graph!(MathGraphTrain);
graph!(MathGraph, #[weights("../fixtures/infer/math.safetensors")]);

fn data(n: usize) -> Array3<f32> {
    Array3::from_shape_fn((n, 4, 6), |(i, a, b)| ((i * 7 + a * 3 + b * 5) % 13) as f32 / 6.0 - 1.0)
}

#[test]
#[ignore = "writes the fixture this file embeds"]
fn write_the_math_fixture() {
    let m = MathGraphTrain::with_seed(3);
    m.save_weights(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/infer/math.safetensors")).unwrap();
}

#[test]
fn user_math_infers_as_predict_does() {
    let x = data(5);
    let mut m = MathGraph::embedded();
    let (j, out) = m.predict(&x).unwrap();
    for (i, sample) in x.outer_iter().enumerate() {
        let sample: Vec<f32> = sample.iter().copied().collect();
        let (ji, oi) = MathGraph::infer(sample.as_slice().try_into().unwrap());
        let jp = j.slice(kiln::ndarray::s![i, .., ..]);
        assert_eq!((ji.len(), jp.len(), oi.len()), (48, 48, 3));
        for (a, b) in ji.iter().zip(jp.iter()) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "sample {i}: infer {a}, predict {b}");
        }
        for (a, b) in oi.iter().zip(out.row(i)) {
            assert!((a - b).abs() <= 1e-6, "sample {i}: infer {a}, predict {b}");
        }
    }
}

/// `gather` and `one_hot` of token ids, trainable and with weights compiled in.
macro_rules! picks {
    ($name:ident $(, #[$attr:meta])?) => {
        functional! {
            $(#[$attr])?
            pub struct $name {
                x = Input([5, 3]);
                ids = Input([3], dtype = i32);
                h = Dense(4)(x);
                g = gather(h, ids);
                o = one_hot(ids, 5);
                out = concatenate([g, o], axis = -1);
                Model([x, ids], out)
            }
        }
    };
}

picks!(PicksTrain);
picks!(Picks, #[weights("../fixtures/infer/picks.safetensors")]);

#[test]
#[ignore = "writes the fixture this file embeds"]
fn write_the_picks_fixture() {
    let m = PicksTrain::with_seed(4);
    m.save_weights(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/infer/picks.safetensors")).unwrap();
}

#[test]
fn gather_and_one_hot_infer_as_predict_does_and_refuse_a_bad_id() {
    let x = Array3::from_shape_fn((2, 5, 3), |(i, r, c)| ((i * 3 + r * 5 + c) % 7) as f32 / 3.0 - 1.0);
    let ids = kiln::ndarray::arr2(&[[4i32, 0, 4], [1, 2, 3]]);
    let mut m = Picks::embedded();
    let out = m.predict((&x, &ids)).unwrap();
    for i in 0..2 {
        let xi: Vec<f32> = x.slice(kiln::ndarray::s![i, .., ..]).iter().copied().collect();
        let idi: Vec<i32> = ids.row(i).to_vec();
        let got = Picks::infer(xi.as_slice().try_into().unwrap(), idi.as_slice().try_into().unwrap()).unwrap();
        let want = out.slice(kiln::ndarray::s![i, .., ..]);
        assert!(got.iter().zip(want.iter()).all(|(a, b)| (a - b).abs() < 1e-6), "{got:?} against {want:?}");
    }
    let bad = Picks::infer(&[0.0; 15], &[0, 5, 1]).unwrap_err().to_string();
    assert!(bad.contains('5'), "{bad}");
}

/// Resizing and the crops in `infer`: the taps computed when the model compiles.
macro_rules! sized_net {
    ($name:ident $(, #[$attr:meta])?) => {
        sequential! {
            $(#[$attr])?
            pub struct $name: [7, 9, 2] {
                Resizing(5, 6),
                Resizing(6, 4, crop_to_aspect_ratio = true),
                CenterCrop(4, 4),
                RandomCrop(3, 2),
                CenterCrop(5, 3),
                Flatten,
                Dense(2),
            }
        }
    };
}

sized_net!(SizedTrain);
sized_net!(Sized, #[weights("../fixtures/infer/sized.safetensors")]);

#[test]
#[ignore = "writes the fixture this file embeds"]
fn write_the_sized_fixture() {
    let m = SizedTrain::with_seed(4);
    m.save_weights(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/infer/sized.safetensors")).unwrap();
}

#[test]
fn resizing_and_crops_infer_as_predict_does() {
    let x =
        kiln::ndarray::Array4::from_shape_fn((3, 7, 9, 2), |(i, a, b, c)| ((i * 5 + a * 3 + b * 7 + c) % 11) as f32);
    let mut m = Sized::embedded();
    let p = m.predict(&x).unwrap();
    for (i, sample) in x.outer_iter().enumerate() {
        let sample: Vec<f32> = sample.iter().copied().collect();
        let out = Sized::infer(sample.as_slice().try_into().unwrap());
        for (a, b) in out.iter().zip(p.row(i)) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "row {i}: infer {a}, predict {b}");
        }
    }
}
