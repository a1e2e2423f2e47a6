//! Keras' category and number preprocessing: `StringLookup` and `IntegerLookup` (a vocabulary
//! learned by `adapt`, values to ids or to encoded rows), `CategoryEncoding` (ids to one-hot,
//! multi-hot or count rows), `Discretization` (numbers to buckets, the boundaries given or
//! learned as Keras learns them) and `Hashing` (values to bins by their FarmHash64, or a salted
//! SipHash). Each matches Keras 3 on committed references
//! (`tests/it/lookup.rs`); the lookups save and load their vocabulary as JSON.

use std::collections::HashMap;
use std::hash::Hash;
use std::path::Path;

use ndarray::Array2;

use super::folders::{load_json, save_json};
use crate::error::{Error, Result};

/// What a lookup or [`CategoryEncoding`] makes of its input (Keras' `output_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encoding {
    /// One id per value.
    #[default]
    Int,
    /// One row per value, 1 at its id.
    OneHot,
    /// One row per list of values, 1 at each id that occurs.
    MultiHot,
    /// One row per list of values: how many times each id occurs.
    Count,
}

/// A value a lookup can hold: a string ([`StringLookup`]) or an integer ([`IntegerLookup`]).
pub trait LookupKey: Clone + Eq + Hash + Ord + std::fmt::Debug {
    /// The out-of-vocabulary entry Keras lists first (`[UNK]`, or `-1`).
    fn oov() -> Self;
    /// The key as JSON.
    fn to_json(&self) -> serde_json::Value;
    /// A key from JSON.
    fn from_json(v: &serde_json::Value) -> Option<Self>;
    /// Which of `n` out-of-vocabulary ids a value not in the vocabulary takes, as Keras picks
    /// it: a string's FarmHash64 fingerprint modulo `n`, an integer modulo `n` (floor modulo).
    fn oov_bucket(&self, n: usize) -> usize;
}

impl LookupKey for String {
    fn oov() -> Self {
        "[UNK]".into()
    }
    fn to_json(&self) -> serde_json::Value {
        self.as_str().into()
    }
    fn from_json(v: &serde_json::Value) -> Option<Self> {
        v.as_str().map(str::to_string)
    }
    fn oov_bucket(&self, n: usize) -> usize {
        (farmhash::fingerprint64(self.as_bytes()) % n as u64) as usize
    }
}

impl LookupKey for i64 {
    fn oov() -> Self {
        -1
    }
    fn to_json(&self) -> serde_json::Value {
        (*self).into()
    }
    fn from_json(v: &serde_json::Value) -> Option<Self> {
        v.as_i64()
    }
    fn oov_bucket(&self, n: usize) -> usize {
        self.rem_euclid(n as i64) as usize
    }
}

/// Keras' `StringLookup`: strings to ids, the vocabulary learned by [`Lookup::adapt`].
pub type StringLookup = Lookup<String>;
/// Keras' `IntegerLookup`: integers to ids, the vocabulary learned by [`Lookup::adapt`].
pub type IntegerLookup = Lookup<i64>;

/// A vocabulary lookup with Keras' defaults (one out-of-vocabulary id, 0, no mask): id 0 for a
/// value not in the vocabulary, ids from 1 for the learned values, most frequent first (ties in
/// descending order of the value, as Keras orders them).
///
/// As Keras' `mask_token` and `num_oov_indices`, [`with_mask_token`](Self::with_mask_token)
/// reserves id 0 for a padding value (in `Int` mode; the other modes drop it) and
/// [`with_num_oov_indices`](Self::with_num_oov_indices) spreads the values out of the vocabulary
/// over several ids (or refuses them, with 0). The ids are then: the mask's, the
/// out-of-vocabulary ones, the learned values.
///
/// ```ignore
/// let mut species = StringLookup::new(Some(10), Encoding::OneHot);
/// species.adapt(&column)?;
/// let x = species.encode(&column)?;        // [rows, vocabulary] one-hot rows
/// let words = StringLookup::new(None, Encoding::Int).with_mask_token("".into()).with_num_oov_indices(2);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Lookup<K: LookupKey> {
    max_tokens: Option<usize>,
    mode: Encoding,
    /// The learned values, without the mask and out-of-vocabulary entries.
    values: Vec<K>,
    /// Each learned value's position in `values`.
    index: HashMap<K, usize>,
    mask: Option<K>,
    num_oov: usize,
}

impl<K: LookupKey> Lookup<K> {
    /// A lookup of at most `max_tokens` entries (the mask and out-of-vocabulary ones included;
    /// `None`: every value seen) encoding as `mode`, with no vocabulary yet.
    pub fn new(max_tokens: Option<usize>, mode: Encoding) -> Self {
        Lookup { max_tokens, mode, values: Vec::new(), index: HashMap::new(), mask: None, num_oov: 1 }
    }

    /// Keras' `mask_token`: the padding value, id 0 in `Int` mode and dropped by the other
    /// modes, never learned. A vocabulary already holding it is refused by the next `adapt` or
    /// encoding.
    pub fn with_mask_token(mut self, mask: K) -> Self {
        self.mask = Some(mask);
        self
    }

    /// Keras' `num_oov_indices` (1 by default): how many ids the values out of the vocabulary
    /// share — a string by its FarmHash64 fingerprint, an integer by its floor modulo, as Keras
    /// spreads them —, or with 0 none, so such a value is an error naming it.
    pub fn with_num_oov_indices(mut self, n: usize) -> Self {
        self.num_oov = n;
        self
    }

    /// Where the out-of-vocabulary ids start (after the mask's, in `Int` mode).
    fn oov_start(&self) -> usize {
        usize::from(self.mask.is_some() && self.mode == Encoding::Int)
    }

    /// Where the learned values' ids start.
    fn token_start(&self) -> usize {
        self.oov_start() + self.num_oov
    }

    /// A lookup of this vocabulary (Keras' `vocabulary=` argument): ids from 1 in this order.
    /// A repeated value is an error naming it.
    pub fn with_vocabulary(values: Vec<K>, mode: Encoding) -> Result<Self> {
        let mut l = Lookup::new(None, mode);
        l.set(values)?;
        Ok(l)
    }

    fn set(&mut self, values: Vec<K>) -> Result<()> {
        let mut index = HashMap::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            if *v == K::oov() || Some(v) == self.mask.as_ref() || index.insert(v.clone(), i).is_some() {
                return Err(Error::InvalidArgument {
                    name: "vocabulary",
                    reason: format!(
                        "holds {v:?} twice (or the out-of-vocabulary entry {:?}, or the mask token {:?})",
                        K::oov(),
                        self.mask
                    ),
                });
            }
        }
        self.values = values;
        self.index = index;
        Ok(())
    }

    /// Learns the vocabulary from `data` (Keras' `adapt`): the values from the most frequent to
    /// the least, ties in descending order, cut to leave `max_tokens` ids in all (the mask and
    /// out-of-vocabulary ones first); the mask token and the out-of-vocabulary entry are not
    /// learned.
    pub fn adapt(&mut self, data: &[K]) -> Result<()> {
        let start = self.token_start();
        if self.max_tokens.is_some_and(|m| m <= start.max(1)) {
            return Err(Error::InvalidArgument {
                name: "max_tokens",
                reason: format!(
                    "must leave room for a learned value beside the {start} mask and out-of-vocabulary id(s) (> {}), got {:?}",
                    start.max(1),
                    self.max_tokens
                ),
            });
        }
        let mut counts: HashMap<&K, usize> = HashMap::new();
        for v in data.iter().filter(|v| **v != K::oov() && Some(*v) != self.mask.as_ref()) {
            *counts.entry(v).or_insert(0) += 1;
        }
        let mut ranked: Vec<(&K, usize)> = counts.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(a.0)));
        ranked.truncate(self.max_tokens.map_or(usize::MAX, |m| m - start));
        self.set(ranked.into_iter().map(|(v, _)| v.clone()).collect())
    }

    /// The vocabulary by id (Keras' `get_vocabulary()`): the mask token (in `Int` mode), the
    /// out-of-vocabulary entry once per out-of-vocabulary id, the learned values.
    pub fn vocabulary(&self) -> Vec<K> {
        let mask = self.mask.iter().take(self.oov_start()).cloned();
        mask.chain(std::iter::repeat_n(K::oov(), self.num_oov)).chain(self.values.iter().cloned()).collect()
    }

    /// The number of ids, mask and out-of-vocabulary ones included: the width of encoded rows.
    pub fn size(&self) -> usize {
        self.token_start() + self.values.len()
    }

    /// A value's id, its index in [`vocabulary`](Self::vocabulary); `None` for the mask token
    /// in the modes that drop it (all but `Int`). A value out of the vocabulary with no
    /// out-of-vocabulary ids is an error naming it.
    pub fn id(&self, value: &K) -> Result<Option<usize>> {
        if Some(value) == self.mask.as_ref() {
            return Ok((self.mode == Encoding::Int).then_some(0));
        }
        if let Some(&i) = self.index.get(value) {
            return Ok(Some(self.token_start() + i));
        }
        match self.num_oov {
            0 => Err(Error::InvalidData {
                what: "lookup input".into(),
                reason: format!(
                    "{value:?} is not in the vocabulary and num_oov_indices is 0 (every value must be known)"
                ),
            }),
            1 => Ok(Some(self.oov_start())),
            n => Ok(Some(self.oov_start() + value.oov_bucket(n))),
        }
    }

    /// Ids back to values (Keras' `invert = True`): the value of each id in
    /// [`vocabulary`](Self::vocabulary), the out-of-vocabulary entry for an id past its end.
    pub fn invert(&self, ids: &[usize]) -> Vec<K> {
        let vocabulary = self.vocabulary();
        ids.iter().map(|&i| vocabulary.get(i).cloned().unwrap_or_else(K::oov)).collect()
    }

    /// Values to ids (`Int` mode's output), the mask token left out where the mode drops it.
    pub fn ids(&self, values: &[K]) -> Result<Vec<usize>> {
        values.iter().filter_map(|v| self.id(v).transpose()).collect()
    }

    fn ready(&self) -> Result<()> {
        if self.values.is_empty() {
            return Err(Error::InvalidArgument {
                name: "Lookup",
                reason: "has no vocabulary: call adapt (or give one) before encoding".into(),
            });
        }
        if let Some(m) = self.mask.as_ref().filter(|m| self.index.contains_key(m)) {
            return Err(Error::InvalidArgument {
                name: "mask_token",
                reason: format!("{m:?} is also a learned value of the vocabulary"),
            });
        }
        Ok(())
    }

    /// One value per row: `[values, 1]` ids (`Int`) or `[values, size]` one-hot rows (`OneHot`).
    /// `MultiHot` and `Count` encode lists: see [`encode_rows`](Self::encode_rows).
    pub fn encode(&self, values: &[K]) -> Result<Array2<f32>> {
        self.ready()?;
        let ids = values.iter().map(|v| self.id(v)).collect::<Result<Vec<_>>>()?;
        match self.mode {
            Encoding::Int => Ok(Array2::from_shape_fn((ids.len(), 1), |(i, _)| ids[i].unwrap_or(0) as f32)),
            // The mask token's row is all zeros.
            Encoding::OneHot => Ok(one_hot(&ids, self.size())),
            mode => Err(Error::InvalidArgument {
                name: "output_mode",
                reason: format!("{mode:?} encodes lists of values: use encode_rows"),
            }),
        }
    }

    /// A list of values per row: `[rows, size]` multi-hot or count rows; `Int` and `OneHot` need
    /// one value per row ([`encode`](Self::encode)).
    pub fn encode_rows<R: AsRef<[K]>>(&self, rows: &[R]) -> Result<Array2<f32>> {
        self.ready()?;
        let ids = rows.iter().map(|r| self.ids(r.as_ref())).collect::<Result<Vec<_>>>()?;
        CategoryEncoding::new(self.size(), self.mode)?.encode(&ids)
    }

    /// The configuration without the vocabulary: `max_tokens`, mode, mask token and
    /// out-of-vocabulary ids, as text.
    pub fn config(&self) -> String {
        format!(
            "max_tokens {:?}, {:?}, mask_token {:?}, num_oov_indices {}",
            self.max_tokens, self.mode, self.mask, self.num_oov
        )
    }

    /// The configuration and vocabulary as JSON (what [`save`](Self::save) writes).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "max_tokens": self.max_tokens,
            "output_mode": format!("{:?}", self.mode),
            "mask_token": self.mask.as_ref().map(K::to_json),
            "num_oov_indices": self.num_oov,
            "vocabulary": self.values.iter().map(K::to_json).collect::<Vec<_>>(),
        })
        .to_string()
    }

    /// A lookup from [`to_json`](Self::to_json)'s text. A field that is missing or of the wrong
    /// kind is an error naming it.
    pub fn from_json(text: &str) -> Result<Self> {
        let bad = |reason: String| Error::InvalidData { what: "lookup JSON".into(), reason };
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let field = |k: &str| v.get(k).ok_or_else(|| bad(format!("has no `{k}`")));
        let max_tokens = match field("max_tokens")? {
            serde_json::Value::Null => None,
            m => Some(m.as_u64().ok_or_else(|| bad("`max_tokens` is not a count".into()))? as usize),
        };
        let names = ["Int", "OneHot", "MultiHot", "Count"];
        let mode = field("output_mode")?.as_str().and_then(|m| names.iter().position(|n| *n == m));
        let mode = [Encoding::Int, Encoding::OneHot, Encoding::MultiHot, Encoding::Count]
            [mode.ok_or_else(|| bad(format!("`output_mode` is not one of {names:?}")))?];
        let values: Vec<K> = field("vocabulary")?
            .as_array()
            .and_then(|a| a.iter().map(K::from_json).collect())
            .ok_or_else(|| bad(format!("`vocabulary` is not a list of {:?}-like values", K::oov())))?;
        // Files written before these two fields: no mask, one out-of-vocabulary id.
        let mask = match v.get("mask_token") {
            None | Some(serde_json::Value::Null) => None,
            Some(m) => Some(K::from_json(m).ok_or_else(|| bad(format!("`mask_token` is not a {:?}-like value", K::oov())))?),
        };
        let num_oov = match v.get("num_oov_indices") {
            None => 1,
            Some(n) => n.as_u64().ok_or_else(|| bad("`num_oov_indices` is not a count".into()))? as usize,
        };
        let mut l = Lookup { mask, num_oov, ..Lookup::new(max_tokens, mode) };
        l.set(values).map_err(|e| bad(e.to_string()))?;
        Ok(l)
    }

    /// Writes [`to_json`](Self::to_json) to `path`, atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_json(path, &self.to_json())
    }

    /// Reads a lookup [`save`](Self::save) wrote.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        load_json(path, Self::from_json)
    }
}

fn one_hot(ids: &[Option<usize>], width: usize) -> Array2<f32> {
    Array2::from_shape_fn((ids.len(), width), |(i, j)| f32::from(ids[i] == Some(j)))
}

/// Keras' `CategoryEncoding`: integer ids in `0..num_tokens` to rows of `num_tokens` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CategoryEncoding {
    num_tokens: usize,
    mode: Encoding,
}

impl CategoryEncoding {
    /// An encoding of ids below `num_tokens` as `mode` (`OneHot`, `MultiHot` or `Count`).
    pub fn new(num_tokens: usize, mode: Encoding) -> Result<Self> {
        if mode == Encoding::Int || num_tokens == 0 {
            return Err(Error::InvalidArgument {
                name: "CategoryEncoding",
                reason: format!("needs num_tokens ≥ 1 and a OneHot, MultiHot or Count mode, got {num_tokens} and {mode:?}"),
            });
        }
        Ok(CategoryEncoding { num_tokens, mode })
    }

    /// Rows of ids to `[rows, num_tokens]`: `OneHot` takes one id per row. An id out of range is
    /// an error naming it and its row (Keras raises too).
    pub fn encode<R: AsRef<[usize]>>(&self, rows: &[R]) -> Result<Array2<f32>> {
        let mut out = Array2::zeros((rows.len(), self.num_tokens));
        for (r, (row, mut o)) in rows.iter().zip(out.outer_iter_mut()).enumerate() {
            let row = row.as_ref();
            if self.mode == Encoding::OneHot && row.len() != 1 {
                return Err(Error::InvalidArgument {
                    name: "CategoryEncoding",
                    reason: format!("OneHot takes one id per row; row {r} has {}", row.len()),
                });
            }
            for &id in row {
                if id >= self.num_tokens {
                    return Err(Error::InvalidArgument {
                        name: "CategoryEncoding",
                        reason: format!("row {r} holds id {id}, outside 0..{}", self.num_tokens),
                    });
                }
                o[id] = match self.mode {
                    Encoding::Count => o[id] + 1.0,
                    _ => 1.0,
                };
            }
        }
        Ok(out)
    }
}

/// Keras' `Discretization`: a number's bucket, `i` where `boundaries[i - 1] ≤ x < boundaries[i]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Discretization {
    boundaries: Vec<f32>,
}

impl Discretization {
    /// Buckets between these boundaries (Keras' `bin_boundaries`), which must increase.
    pub fn new(boundaries: Vec<f32>) -> Result<Self> {
        if boundaries.iter().any(|b| !b.is_finite()) || boundaries.windows(2).any(|w| w[0] > w[1]) {
            return Err(Error::InvalidArgument {
                name: "bin_boundaries",
                reason: format!("must be finite and in increasing order, got {boundaries:?}"),
            });
        }
        Ok(Discretization { boundaries })
    }

    /// `num_bins` buckets of about equal counts of `data` (Keras' `adapt` with `num_bins` and
    /// `epsilon`, its default 0.01): Keras' quantile summary, reproduced step for step so the
    /// boundaries are Keras' to the last bit.
    pub fn adapt(data: &[f32], num_bins: usize, epsilon: f64) -> Result<Self> {
        if num_bins < 1 || !(epsilon > 0.0 && epsilon <= 1.0) || data.iter().any(|x| x.is_nan()) || data.is_empty() {
            return Err(Error::InvalidArgument {
                name: "Discretization::adapt",
                reason: format!(
                    "needs data without NaN, num_bins ≥ 1 and epsilon in (0, 1], got {} values, {num_bins}, {epsilon}",
                    data.len()
                ),
            });
        }
        let summary = compress(summarize(data, epsilon), epsilon);
        let mut bins = compress(summary, 1.0 / num_bins as f64).0;
        bins.pop();
        Ok(Discretization { boundaries: bins })
    }

    /// The boundaries.
    pub fn boundaries(&self) -> &[f32] {
        &self.boundaries
    }

    /// A number's bucket, in `0..=boundaries.len()` (NaN: 0).
    pub fn bucket(&self, x: f32) -> usize {
        self.boundaries.partition_point(|b| *b <= x)
    }

    /// Numbers to buckets.
    pub fn buckets(&self, xs: &[f32]) -> Vec<usize> {
        xs.iter().map(|&x| self.bucket(x)).collect()
    }
}

/// Keras' `summarize`: every `step`-th sorted value, each weighing `step`.
fn summarize(data: &[f32], epsilon: f64) -> (Vec<f32>, Vec<f32>) {
    let mut values = data.to_vec();
    values.sort_by(f32::total_cmp);
    let step = (values.len() as f64 * epsilon).max(1.0);
    let (start, stride) = ((step - 1.0) as usize, step as usize);
    let points: Vec<f32> = values.iter().skip(start).step_by(stride).copied().collect();
    let weights = vec![step as f32; points.len()];
    (points, weights)
}

/// Keras' `compress_summary`: the summary's values and weights interpolated at `epsilon`,
/// `2·epsilon`, ... of its cumulative weight (numpy's `interp`, in f64, stored as f32).
fn compress((points, weights): (Vec<f32>, Vec<f32>), epsilon: f64) -> (Vec<f32>, Vec<f32>) {
    if (points.len() as f64) * epsilon < 1.0 {
        return (points, weights);
    }
    // `epsilon + np.arange(0.0, 1.0, epsilon)`: ceil(1 / epsilon) values.
    let count = (1.0 / epsilon).ceil() as usize;
    let percents: Vec<f64> = (0..count).map(|i| epsilon + i as f64 * epsilon).collect();
    let mut total = 0.0f32;
    let cum: Vec<f32> = weights.iter().map(|w| {
        total += w;
        total
    })
    .collect();
    let last = cum[cum.len() - 1];
    let cum_pct: Vec<f64> = cum.iter().map(|c| f64::from(c / last)).collect();
    let xs: Vec<f64> = points.iter().map(|&p| f64::from(p)).collect();
    let cw: Vec<f64> = cum.iter().map(|&c| f64::from(c)).collect();
    let bins: Vec<f32> = percents.iter().map(|&p| interp(p, &cum_pct, &xs) as f32).collect();
    let cum_at: Vec<f64> = percents.iter().map(|&p| interp(p, &cum_pct, &cw)).collect();
    let new_weights = cum_at.iter().enumerate().map(|(i, c)| (c - if i == 0 { 0.0 } else { cum_at[i - 1] }) as f32).collect();
    (bins, new_weights)
}

/// numpy's `interp(x, xp, fp)` for increasing `xp`: the ends held beyond the range.
fn interp(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    let n = xp.len();
    if x <= xp[0] {
        return fp[0];
    }
    if x >= xp[n - 1] {
        return fp[n - 1];
    }
    // The j with xp[j] <= x < xp[j + 1].
    let j = xp.partition_point(|v| *v <= x) - 1;
    let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    let y = slope * (x - xp[j]) + fp[j];
    if y.is_nan() {
        let y = slope * (x - xp[j + 1]) + fp[j + 1];
        if y.is_nan() && fp[j] == fp[j + 1] {
            return fp[j];
        }
        return y;
    }
    y
}

/// Keras' `Hashing`: a value's bin, its FarmHash64 fingerprint modulo the bins (TensorFlow's
/// `to_hash_bucket_fast`, so the same strings land in the same bins as in Keras), or with a
/// salt ([`with_salt`](Self::with_salt)) its SipHash-2-4 keyed by the salt (TensorFlow's
/// `to_hash_bucket_strong`). With a mask value, bin 0 is the mask's and the others hash into
/// `1..num_bins`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hashing {
    num_bins: usize,
    mask: Option<String>,
    salt: Option<[u64; 2]>,
}

impl Hashing {
    /// Hashing into `num_bins` bins (at least 1; 2 with a mask value).
    pub fn new(num_bins: usize, mask_value: Option<&str>) -> Result<Self> {
        if num_bins < 1 + usize::from(mask_value.is_some()) {
            return Err(Error::InvalidArgument {
                name: "num_bins",
                reason: format!("must be at least 1, and 2 with a mask value; got {num_bins}"),
            });
        }
        Ok(Hashing { num_bins, mask: mask_value.map(str::to_string), salt: None })
    }

    /// `new` for arguments already checked (the model macros check them when the model
    /// compiles).
    pub(crate) fn from_parts(num_bins: usize, mask_value: Option<&str>) -> Self {
        Hashing { num_bins, mask: mask_value.map(str::to_string), salt: None }
    }

    /// The number of bins.
    pub fn num_bins(&self) -> usize {
        self.num_bins
    }

    /// The configuration as JSON.
    pub fn to_json(&self) -> String {
        serde_json::json!({ "num_bins": self.num_bins, "mask_value": self.mask, "salt": self.salt }).to_string()
    }

    /// A `Hashing` from [`to_json`](Self::to_json)'s text.
    pub fn from_json(text: &str) -> Result<Self> {
        let bad = |reason: String| Error::InvalidData { what: "Hashing JSON".into(), reason };
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let num_bins = v.get("num_bins").and_then(|n| n.as_u64()).ok_or_else(|| bad("`num_bins` is not a count".into()))?;
        let mask = match v.get("mask_value") {
            None | Some(serde_json::Value::Null) => None,
            Some(m) => Some(m.as_str().ok_or_else(|| bad("`mask_value` is not a string".into()))?),
        };
        let salt = match v.get("salt") {
            None | Some(serde_json::Value::Null) => None,
            Some(s) => Some(
                s.as_array()
                    .and_then(|a| Some([a.first()?.as_u64()?, a.get(1)?.as_u64()?]))
                    .ok_or_else(|| bad("`salt` is not two keys".into()))?,
            ),
        };
        let h = Hashing::new(num_bins as usize, mask).map_err(|e| bad(e.to_string()))?;
        Ok(Hashing { salt, ..h })
    }

    /// Keras' `salt`: the two keys of a SipHash-2-4 (`salt = 133` in Keras is `[133, 133]`).
    pub fn with_salt(mut self, salt: [u64; 2]) -> Self {
        self.salt = Some(salt);
        self
    }

    /// A string's bin.
    pub fn bin(&self, value: &str) -> usize {
        let masked = usize::from(self.mask.is_some());
        if self.mask.as_deref() == Some(value) {
            return 0;
        }
        let hash = match self.salt {
            None => farmhash::fingerprint64(value.as_bytes()),
            Some([k0, k1]) => siphasher::sip::SipHasher24::new_with_keys(k0, k1).hash(value.as_bytes()),
        };
        (hash % (self.num_bins - masked) as u64) as usize + masked
    }

    /// An integer's bin: its decimal text's (Keras hashes `tf.as_string` of integers, and of
    /// floats cast to integers first).
    pub fn bin_int(&self, value: i64) -> usize {
        self.bin(&value.to_string())
    }

    /// Strings to bins.
    pub fn bins<S: AsRef<str>>(&self, values: &[S]) -> Vec<usize> {
        values.iter().map(|v| self.bin(v.as_ref())).collect()
    }
}
