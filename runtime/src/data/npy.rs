//! NumPy's `.npy` and `.npz` files (`np.save`, `np.savez`, `np.savez_compressed`), read with
//! `ndarray-npy`, as `f32` arrays of any rank: what `fit`, `evaluate` and `predict` take.

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Seek};
use std::path::Path;

use ndarray::ArrayD;
use ndarray_npy::{ReadNpyError, ReadNpyExt, ReadableElement};

use crate::error::{Error, Result};

/// The element types read, in the order tried; each is converted to `f32` (`int64` ids and
/// `float64` values round to the nearest `f32`; `bool` is 0 or 1).
const DTYPES: &str = "float32, float64, int8/16/32/64, uint8/16/32/64 or bool";

fn bad(path: &Path, reason: String) -> Error {
    Error::BadFile { path: path.display().to_string(), reason }
}

/// An array as `f32`, or why not: `None` when its dtype is not the one tried.
type Decoded = std::result::Result<ArrayD<f32>, Option<ReadNpyError>>;

/// One array from `.npy` bytes, whatever its numeric dtype, as `f32`; `Err(None)` when no
/// dtype kiln reads matches.
fn decode(bytes: &[u8]) -> Decoded {
    fn as_f32<T: ReadableElement + Copy>(bytes: &[u8], f: impl Fn(T) -> f32) -> Decoded {
        match ArrayD::<T>::read_npy(Cursor::new(bytes)) {
            Ok(a) => Ok(a.mapv(f)),
            Err(ReadNpyError::WrongDescriptor(_)) => Err(None),
            Err(e) => Err(Some(e)),
        }
    }
    let tries: [fn(&[u8]) -> Decoded; 11] = [
        |b| as_f32::<f32>(b, |v| v),
        |b| as_f32::<f64>(b, |v| v as f32),
        |b| as_f32::<i64>(b, |v| v as f32),
        |b| as_f32::<i32>(b, |v| v as f32),
        |b| as_f32::<i16>(b, |v| v as f32),
        |b| as_f32::<i8>(b, |v| v as f32),
        |b| as_f32::<u8>(b, |v| v as f32),
        |b| as_f32::<u16>(b, |v| v as f32),
        |b| as_f32::<u32>(b, |v| v as f32),
        |b| as_f32::<u64>(b, |v| v as f32),
        |b| as_f32::<bool>(b, |v| v as u8 as f32),
    ];
    for t in tries {
        match t(bytes) {
            Err(None) => continue,
            other => return other,
        }
    }
    Err(None)
}

fn decoded(path: &Path, what: &str, bytes: &[u8]) -> Result<ArrayD<f32>> {
    decode(bytes).map_err(|e| match e {
        Some(e) => bad(path, format!("{what}not a valid .npy array: {e}")),
        None => bad(path, format!("{what}holds a dtype kiln does not read (it reads {DTYPES})")),
    })
}

/// Reads a NumPy `.npy` file (`np.save`) as an `f32` array of its shape; float32, float64 and
/// integer dtypes (either byte order, C or Fortran order) are converted to `f32`.
///
/// ```ignore
/// let x = kiln::data::read_npy("x_train.npy")?.into_dimensionality::<kiln::ndarray::Ix4>()?;
/// ```
pub fn read_npy(path: impl AsRef<Path>) -> Result<ArrayD<f32>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    decoded(path, "", &bytes)
}

/// Reads every array of a NumPy `.npz` file (`np.savez`, `np.savez_compressed`) by name (the
/// names `np.load` gives: `x_train`, not `x_train.npy`), each as an `f32` array of its shape.
///
/// ```ignore
/// let mut arrays = kiln::data::read_npz("mnist.npz")?;
/// let x_train = arrays.remove("x_train").unwrap();
/// ```
pub fn read_npz(path: impl AsRef<Path>) -> Result<BTreeMap<String, ArrayD<f32>>> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    read_npz_from(path, std::io::BufReader::new(file))
}

fn read_npz_from<R: Read + Seek>(path: &Path, reader: R) -> Result<BTreeMap<String, ArrayD<f32>>> {
    let zip_err = |e: zip::result::ZipError| bad(path, format!("not a valid .npz (zip) file: {e}"));
    let mut archive = zip::ZipArchive::new(reader).map_err(zip_err)?;
    if archive.is_empty() {
        return Err(bad(path, "the .npz file holds no arrays".into()));
    }
    let mut out = BTreeMap::new();
    for i in 0..archive.len() {
        let mut member = archive.by_index(i).map_err(zip_err)?;
        let key = member.name().strip_suffix(".npy").unwrap_or(member.name()).to_string();
        let mut bytes = Vec::with_capacity(member.size() as usize);
        member.read_to_end(&mut bytes).map_err(|e| bad(path, format!("array `{key}`: {e}")))?;
        out.insert(key.clone(), decoded(path, &format!("array `{key}` "), &bytes)?);
    }
    Ok(out)
}
