//! Keras 3's image preprocessing layers: `RandomFlip`, `RandomTranslation`, `RandomContrast`,
//! `RandomBrightness` (training only, drawing from the model's stream), `Resizing` and
//! `CenterCrop`. Gradient checks in training mode, Keras parity on
//! `tests/fixtures/keras/augment.txt` (from `examples/keras/augment_reference.py`): Resizing and
//! CenterCrop values and gradients, every random layer at inference, and each random layer's
//! training transform for a given draw; the layers in the three model styles, reproducibly.

use kiln::ndarray::{Array1, Array4};
use kiln::prelude::*;
use kiln::testing::{assert_close, check_layer, check_model};
use kiln::{
    Ctx, FillMode, Layer, RandomBrightness, RandomContrast, RandomCrop, RandomFlip, RandomRotation, RandomTranslation,
    RandomZoom, Resize, Stream,
};
use rand::{Rng, SeedableRng};

const TOL: f64 = 3e-3;
const FIXTURE: &str = include_str!("../fixtures/keras/augment.txt");

fn reference(key: &str) -> Vec<f32> {
    kiln::testing::reference(FIXTURE, key).unwrap_or_else(|| panic!("{key} missing from augment.txt"))
}

fn random(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

fn run<L: Layer>(layer: &mut L, x: &[f32], n: usize, training: bool) -> Vec<f32> {
    let mut s = Stream::new(5);
    layer.forward(&[x], &mut Ctx::new(n, training, &mut s));
    layer.output().to_vec()
}

#[test]
fn every_augmentation_layer_passes_the_gradient_check_in_training() {
    let x = random(3 * 5 * 6 * 2, 0.3, 1.0, 1);
    check_layer(&mut RandomFlip::new(5, 6, 2, true, true), &[&x], 3, 1, TOL).unwrap();
    check_layer(&mut RandomFlip::new(5, 6, 2, true, false), &[&x], 3, 1, TOL).unwrap();
    for mode in [FillMode::Constant, FillMode::Reflect, FillMode::Nearest] {
        let mut t = RandomTranslation::new(5, 6, 2, (-0.3, 0.3), (-0.4, 0.2), mode, 0.5);
        check_layer(&mut t, &[&x], 3, 1, TOL).unwrap_or_else(|e| panic!("{mode:?}: {e}"));
    }
    for mode in [FillMode::Constant, FillMode::Reflect, FillMode::Nearest] {
        let mut r = RandomRotation::new(5, 6, 2, (-0.3, 0.3), mode, 0.5);
        check_layer(&mut r, &[&x], 3, 1, TOL).unwrap_or_else(|e| panic!("rotation {mode:?}: {e}"));
        let mut z = RandomZoom::new(5, 6, 2, (-0.4, 0.4), Some((-0.2, 0.5)), mode, 0.5);
        check_layer(&mut z, &[&x], 3, 1, TOL).unwrap_or_else(|e| panic!("zoom {mode:?}: {e}"));
    }
    // Values well inside value_range (nothing clipped), then a range that clips some.
    check_layer(&mut RandomContrast::new(5, 6, 2, (0.0, 0.3), (0.0, 255.0)), &[&x], 3, 1, TOL).unwrap();
    // Clipped values pass no gradient: inputs moved until no output is within 0.01 of the bound
    // before clipping (where a finite difference would cross it).
    let mut near = x.clone();
    for _ in 0..20 {
        let mut wide = RandomContrast::new(5, 6, 2, (0.0, 0.5), (-1e3, 1e3));
        let mut s = Stream::new(42);
        wide.forward(&[&near], &mut Ctx::new(3, true, &mut s));
        let y = wide.output().to_vec();
        near.iter_mut().zip(y).filter(|(_, y)| (y - 0.9).abs() < 0.01).for_each(|(v, _)| *v -= 0.03);
    }
    check_layer(&mut RandomContrast::new(5, 6, 2, (0.0, 0.5), (0.0, 0.9)), &[&near], 3, 1, TOL).unwrap();
    check_layer(&mut RandomBrightness::new(5, 6, 2, (-0.2, 0.2), (0.0, 255.0)), &[&x], 3, 1, TOL).unwrap();
    check_layer(&mut RandomBrightness::new(5, 6, 2, (-0.2, 0.2), (0.0, 1.0)), &[&x], 3, 1, TOL).unwrap();
    check_layer(&mut Resize::bilinear(5, 6, 2, 3, 4, false), &[&x], 3, 1, TOL).unwrap();
    check_layer(&mut Resize::bilinear(5, 6, 2, 8, 7, true), &[&x], 3, 1, TOL).unwrap();
    check_layer(&mut Resize::center_crop(5, 6, 2, 3, 3), &[&x], 3, 1, TOL).unwrap();
    // A random window in training; the aspect crop and resize where the image is not larger.
    check_layer(&mut RandomCrop::new(5, 6, 2, 3, 4), &[&x], 3, 1, TOL).unwrap();
    check_layer(&mut RandomCrop::new(5, 6, 2, 5, 3), &[&x], 3, 1, TOL).unwrap();
}

#[test]
fn resizing_and_center_crop_match_keras_values_and_gradients() {
    type Make = fn() -> Resize;
    let cases: [(&str, Make); 5] = [
        ("resizing_down", || Resize::bilinear(7, 9, 2, 3, 4, false)),
        ("resizing_up", || Resize::bilinear(3, 4, 3, 7, 5, false)),
        ("resizing_crop", || Resize::bilinear(6, 9, 1, 4, 4, true)),
        ("center_crop", || Resize::center_crop(6, 7, 2, 3, 4)),
        ("center_crop_up", || Resize::center_crop(5, 7, 1, 8, 6)),
    ];
    for (case, make) in cases {
        let mut layer = make();
        let x = reference(&format!("{case}.x"));
        let mut s = Stream::new(1);
        layer.forward(&[&x], &mut Ctx::new(2, false, &mut s));
        assert_close(&format!("{case}.out"), layer.output(), &reference(&format!("{case}.out")), 1e-5);
        let dy = reference(&format!("{case}.dy"));
        let opts = kiln::BackwardOpts { input_grad: true, ..Default::default() };
        layer.backward(&[&x], &dy, &mut Ctx::new(2, true, &mut s), opts);
        assert_close(&format!("{case}.dx"), layer.input_grad(0), &reference(&format!("{case}.dx")), 1e-5);
    }
}

#[test]
fn random_layers_are_the_identity_at_inference_as_in_keras() {
    let (h, w, c) = (4, 5, 3);
    type Apply = Box<dyn Fn(&[f32]) -> Vec<f32>>;
    let cases: [(&str, Apply); 6] = [
        (
            "random_rotation",
            Box::new(move |x| run(&mut RandomRotation::new(h, w, c, (-0.2, 0.2), FillMode::Reflect, 0.0), x, 2, false)),
        ),
        (
            "random_zoom",
            Box::new(move |x| {
                run(&mut RandomZoom::new(h, w, c, (-0.3, 0.3), None, FillMode::Reflect, 0.0), x, 2, false)
            }),
        ),
        ("random_flip", Box::new(move |x| run(&mut RandomFlip::new(h, w, c, true, true), x, 2, false))),
        (
            "random_translation",
            Box::new(move |x| {
                run(&mut RandomTranslation::new(h, w, c, (-0.2, 0.2), (-0.3, 0.3), FillMode::Reflect, 0.0), x, 2, false)
            }),
        ),
        (
            "random_contrast",
            Box::new(move |x| run(&mut RandomContrast::new(h, w, c, (0.0, 0.5), (0.0, 255.0)), x, 2, false)),
        ),
        (
            "random_brightness",
            Box::new(move |x| run(&mut RandomBrightness::new(h, w, c, (-0.4, 0.4), (0.0, 255.0)), x, 2, false)),
        ),
    ];
    for (case, f) in cases {
        let x = reference(&format!("{case}_inference.x"));
        assert_eq!(f(&x), reference(&format!("{case}_inference.out")), "{case}");
    }
    // The same through a model's predict.
    let x = Array4::from_shape_vec((2, 4, 5, 3), reference("random_flip_inference.x")).unwrap();
    assert_eq!(Augmented::new().predict(&x).unwrap(), x);
}

#[test]
fn training_transforms_match_keras_for_a_given_draw() {
    let (h, w, c, len) = (5, 6, 2, 60);
    let x = reference("translation_constant_fixed.x");
    for (mode, key) in
        [(FillMode::Constant, "constant"), (FillMode::Reflect, "reflect"), (FillMode::Nearest, "nearest")]
    {
        let t = RandomTranslation::new(h, w, c, (0.0, 0.0), (0.0, 0.0), mode, 7.0);
        let shifts = reference(&format!("translation_{key}_fixed.t"));
        let mut out = vec![0.0; x.len()];
        for i in 0..2 {
            t.translate(&x[i * len..][..len], &mut out[i * len..][..len], shifts[2 * i], shifts[2 * i + 1]);
        }
        assert_close(&format!("translation {key}"), &out, &reference(&format!("translation_{key}_fixed.out")), 1e-4);
    }
    for (mode, key) in
        [(FillMode::Constant, "constant"), (FillMode::Reflect, "reflect"), (FillMode::Nearest, "nearest")]
    {
        let x = reference(&format!("rotation_{key}_fixed.x"));
        let r = RandomRotation::new(h, w, c, (0.0, 0.0), mode, 7.0);
        let mut out = vec![0.0; x.len()];
        for (i, a) in reference(&format!("rotation_{key}_fixed.angles")).into_iter().enumerate() {
            r.rotate(&x[i * len..][..len], &mut out[i * len..][..len], a);
        }
        assert_close(&format!("rotation {key}"), &out, &reference(&format!("rotation_{key}_fixed.out")), 1e-4);
        let z = RandomZoom::new(h, w, c, (0.0, 0.0), None, mode, 7.0);
        let zooms = reference(&format!("zoom_{key}_fixed.zooms"));
        for i in 0..2 {
            z.zoom(&x[i * len..][..len], &mut out[i * len..][..len], zooms[2 * i], zooms[2 * i + 1]);
        }
        assert_close(&format!("zoom {key}"), &out, &reference(&format!("zoom_{key}_fixed.out")), 1e-4);
    }
    // RandomCrop's window for a given offset; at inference the aspect crop and resize (Keras 3
    // returns the image uncropped there, which kiln's static shape cannot).
    let xc = reference("crop_fixed.x");
    let at = reference("crop_fixed.at");
    let mut crop = RandomCrop::new(5, 7, 2, 3, 4);
    let mut got = vec![0.0; 2 * 3 * 4 * 2];
    for i in 0..2 {
        crop.crop(&xc[i * 70..][..70], &mut got[i * 24..][..24], at[0] as usize, at[1] as usize);
    }
    assert_eq!(got, reference("crop_fixed.out"));
    assert_eq!(run(&mut crop, &xc, 2, false), run(&mut Resize::bilinear(5, 7, 2, 3, 4, true), &xc, 2, false));
    let (mut out, mut clipped) = (vec![0.0; x.len()], vec![false; x.len()]);
    let mut contrast = RandomContrast::new(h, w, c, (0.0, 0.0), (0.0, 255.0));
    for (i, f) in reference("contrast_fixed.f").into_iter().enumerate() {
        contrast.adjust(&x[i * len..][..len], &mut out[i * len..][..len], &mut clipped[i * len..][..len], f);
    }
    assert_close("contrast", &out, &reference("contrast_fixed.out"), 1e-5);
    for (i, d) in reference("brightness_fixed.d").into_iter().enumerate() {
        // A range of one value draws exactly it.
        let mut b = RandomBrightness::new(h, w, c, (d / 255.0, d / 255.0), (0.0, 255.0));
        out[i * len..][..len].copy_from_slice(&run(&mut b, &x[i * len..][..len], 1, true));
    }
    assert_close("brightness", &out, &reference("brightness_fixed.out"), 1e-5);
    let flip = RandomFlip::new(h, w, c, true, true);
    for (i, f) in [true, false].into_iter().enumerate() {
        flip.flip(f, &x[i * len..][..len], &mut out[i * len..][..len]);
    }
    assert_eq!(out, reference("flip_fixed.out"));
}

sequential! {
    /// Every random layer, for the identity at inference.
    pub struct Augmented: [4, 5, 3] {
        RandomFlip("horizontal_and_vertical"),
        RandomTranslation(0.2, 0.3),
        RandomRotation(0.2, fill_mode = "nearest"),
        RandomZoom(0.3, width_factor = 0.1),
        RandomContrast(0.5),
        RandomBrightness(0.4),
    }
}

sequential! {
    /// Augmentation and resizing as layers of a small classifier.
    pub struct AugSeq: [8, 8, 1] {
        RandomTranslation(0.1, 0.1, fill_mode = "constant"),
        RandomFlip("horizontal"),
        RandomContrast(0.2, value_range = [0, 1]),
        RandomBrightness(0.1, value_range = [0, 1]),
        Resizing(6, 6),
        CenterCrop(4, 4),
        Flatten,
        Dense(3, activation = softmax),
    }
}

functional! {
    /// The same layers in the functional style.
    pub struct AugFun {
        x = Input([8, 8, 1]);
        a = RandomTranslation(0.1, 0.1, fill_mode = "constant")(x);
        b = RandomFlip("horizontal")(a);
        c = RandomContrast(0.2, value_range = [0, 1])(b);
        d = RandomBrightness(0.1, value_range = [0, 1])(c);
        e = Resizing(6, 6)(d);
        f = CenterCrop(4, 4)(e);
        y = Dense(3, activation = softmax)(Flatten()(f));
        Model(x, y)
    }
}

sequential! {
    /// The stem a subclassed model nests.
    pub struct AugStem: [8, 8, 1] {
        RandomTranslation(0.1, 0.1, fill_mode = "constant"),
        RandomFlip("horizontal"),
        RandomContrast(0.2, value_range = [0, 1]),
        RandomBrightness(0.1, value_range = [0, 1]),
        Resizing(6, 6),
        CenterCrop(4, 4),
    }
}

#[kiln::model]
pub struct AugSub {
    stem: AugStem,
    head: Dense<16, 3, Softmax>,
}

#[kiln::call]
impl AugSub {
    fn call(&self, x: Input<8, 8, 1>) -> Output<3> {
        self.head(flatten(self.stem(x)))
    }
}

fn digits_like(n: usize) -> (Array4<f32>, Array1<f32>) {
    let x = Array4::from_shape_vec((n, 8, 8, 1), random(n * 64, 0.0, 1.0, 3)).unwrap();
    let y = Array1::from_shape_fn(n, |i| (i % 3) as f32);
    (x, y)
}

fn train<M: Model>(m: &mut M) -> Vec<f32> {
    let (x, y) = digits_like(32);
    m.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    m.fit(&x, &y, Fit { epochs: 2, batch_size: 8, verbose: 0, ..Fit::default() }).unwrap();
    let mut w = Vec::new();
    m.visit_weights(&mut |_, p| w.extend_from_slice(&p.value));
    w
}

#[test]
fn the_layers_work_in_the_three_styles_and_training_is_reproducible() {
    let (x, _) = digits_like(2);
    let flat: Vec<f32> = x.iter().copied().collect();
    check_model(&mut AugSeq::with_seed(3), &[&flat], 2, 8, TOL).unwrap();
    check_model(&mut AugFun::with_seed(3), &[&flat], 2, 8, TOL).unwrap();
    check_model(&mut AugSub::with_seed(3), &[&flat], 2, 8, TOL).unwrap();
    let s = AugSeq::new().summary_string();
    for want in
        ["random_translation (RandomTranslation)", "(None, 6, 6, 1)", "center_crop (CenterCrop)", "(None, 4, 4, 1)"]
    {
        assert!(s.contains(want), "{want} missing:\n{s}");
    }
    let (a, b) = (train(&mut AugSeq::with_seed(9)), train(&mut AugSeq::with_seed(9)));
    assert_eq!(a, b, "the same seed gives the same augmentations and weights");
    assert_ne!(a, train(&mut AugSeq::with_seed(10)));
    assert_eq!(train(&mut AugFun::with_seed(9)), train(&mut AugFun::with_seed(9)));
    assert_eq!(train(&mut AugSub::with_seed(9)), train(&mut AugSub::with_seed(9)));
}

sequential! {
    /// A random crop in a model: 8×8 images cropped to 6×6 in training, the aspect crop and
    /// resize (here a centred 6×6 window read bilinearly) at inference.
    pub struct Cropped: [8, 8, 1] {
        RandomCrop(6, 6),
        Flatten,
        Dense(3, activation = softmax),
    }
}

#[test]
fn a_random_crop_trains_in_a_model_and_its_gradient_checks() {
    let (x, y) = digits_like(24);
    let mut m = Cropped::with_seed(4);
    m.compile("sparse_categorical_crossentropy", "adam", &[]).unwrap();
    let h = m.fit(&x, &y, Fit { epochs: 3, batch_size: 8, verbose: 0, ..Fit::default() }).unwrap();
    assert!(h.get("loss").unwrap().iter().all(|l| l.is_finite()));
    assert_eq!(m.predict(&x).unwrap().shape(), &[24, 3]);
    let flat: Vec<f32> = x.iter().take(2 * 64).copied().collect();
    check_model(&mut Cropped::with_seed(5), &[&flat], 2, 8, TOL).unwrap();
}
