//! What `fit`, `evaluate` and `predict` take and give: arrays of `f32` or integers, one per
//! input or output, and the prediction built from the outputs.

use ndarray::{Array, ArrayBase, ArrayD, ArrayViewD, CowArray, Data, Dimension, IxDyn};

use crate::error::Result;

/// One array as the training loop reads it: `f32` values, borrowed when the caller's array holds
/// `f32`, converted once per call when it holds integers (token ids, class labels).
pub type InputArray<'a> = CowArray<'a, f32, IxDyn>;

/// An element type `fit`, `evaluate` and `predict` accept: `f32`, or integers (`i32`, `i64`,
/// `u8`, `u16`, `u32`), which are converted to `f32` once per call. Integer inputs (token ids for
/// an `Embedding`) and integer labels (`sparse_categorical_crossentropy`) are exact below 2²⁴.
pub trait Element: Copy + 'static {
    /// The array's values as `f32`, borrowed when they already are.
    fn as_f32<'a, S: Data<Elem = Self>, D: Dimension>(a: &'a ArrayBase<S, D>) -> InputArray<'a>;
}

impl Element for f32 {
    fn as_f32<'a, S: Data<Elem = Self>, D: Dimension>(a: &'a ArrayBase<S, D>) -> InputArray<'a> {
        CowArray::from(a.view().into_dyn())
    }
}

macro_rules! integer_elements {
    ($($t:ty),*) => {$(
        impl Element for $t {
            fn as_f32<'a, S: Data<Elem = Self>, D: Dimension>(a: &'a ArrayBase<S, D>) -> InputArray<'a> {
                CowArray::from(a.mapv(|v| v as f32).into_dyn())
            }
        }
    )*};
}

integer_elements!(i32, i64, u8, u16, u32);

/// Arrays passed to `fit`, `evaluate` and `predict`: one array (`&x`), or a tuple of arrays
/// (`(&a, &b)`) for a model with several inputs or outputs, in declaration order. Each holds
/// `f32` or integers (see [`Element`]).
pub trait Inputs<'a> {
    /// The arrays as dynamic-rank `f32` arrays.
    fn arrays(self) -> Vec<InputArray<'a>>;
}

impl<'a, T: Element, S: Data<Elem = T>, D: Dimension> Inputs<'a> for &'a ArrayBase<S, D> {
    fn arrays(self) -> Vec<InputArray<'a>> {
        vec![T::as_f32(self)]
    }
}

impl<'a> Inputs<'a> for Vec<ArrayViewD<'a, f32>> {
    fn arrays(self) -> Vec<InputArray<'a>> {
        self.into_iter().map(CowArray::from).collect()
    }
}

impl<'a> Inputs<'a> for Vec<InputArray<'a>> {
    fn arrays(self) -> Vec<InputArray<'a>> {
        self
    }
}

/// No arrays: the targets of a model trained by a step of its own that reads none (`fit_steps`).
impl<'a> Inputs<'a> for () {
    fn arrays(self) -> Vec<InputArray<'a>> {
        Vec::new()
    }
}

macro_rules! tuple_inputs {
    ($(($($t:ident $s:ident $d:ident $v:ident),+))*) => {$(
        impl<'a, $($t: Element, $s: Data<Elem = $t>, $d: Dimension),+> Inputs<'a> for ($(&'a ArrayBase<$s, $d>,)+) {
            fn arrays(self) -> Vec<InputArray<'a>> {
                let ($($v,)+) = self;
                vec![$($t::as_f32($v)),+]
            }
        }
    )*};
}

tuple_inputs! {
    (T1 S1 D1 a)
    (T1 S1 D1 a, T2 S2 D2 b)
    (T1 S1 D1 a, T2 S2 D2 b, T3 S3 D3 c)
    (T1 S1 D1 a, T2 S2 D2 b, T3 S3 D3 c, T4 S4 D4 d)
}

/// What `predict` returns, built from one `[n, ..shape]` array per output.
pub trait Prediction: Sized {
    /// Builds the prediction from the outputs, in order.
    fn from_outputs(outputs: Vec<ArrayD<f32>>) -> Result<Self>;
}

fn fixed<D: Dimension>(a: Option<ArrayD<f32>>) -> Result<Array<f32, D>> {
    let a = a.ok_or_else(|| crate::Error::invalid("predict", "the model returned fewer outputs than it declares"))?;
    let shape = a.shape().to_vec();
    a.into_dimensionality::<D>().map_err(|_| {
        crate::Error::invalid("predict", format!("an output of shape {shape:?} does not fit the prediction's rank"))
    })
}

impl<D: Dimension> Prediction for Array<f32, D> {
    fn from_outputs(outputs: Vec<ArrayD<f32>>) -> Result<Self> {
        fixed(outputs.into_iter().next())
    }
}

impl Prediction for Vec<ArrayD<f32>> {
    fn from_outputs(outputs: Vec<ArrayD<f32>>) -> Result<Self> {
        Ok(outputs)
    }
}

macro_rules! tuple_prediction {
    ($(($($d:ident),+))*) => {$(
        impl<$($d: Dimension),+> Prediction for ($(Array<f32, $d>,)+) {
            fn from_outputs(outputs: Vec<ArrayD<f32>>) -> Result<Self> {
                let mut it = outputs.into_iter();
                Ok(($(fixed::<$d>(it.next())?,)+))
            }
        }
    )*};
}

tuple_prediction! {
    (D1, D2)
    (D1, D2, D3)
    (D1, D2, D3, D4)
}
