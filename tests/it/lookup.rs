//! `kiln::data`'s lookups and encodings against Keras 3 (`tests/fixtures/keras/lookup.txt`, from
//! `examples/keras/lookup_reference.py`): `StringLookup` and `IntegerLookup` (vocabulary order
//! with ties, `max_tokens`, ids, one-hot, multi-hot, counts), `CategoryEncoding`, and
//! `Discretization`'s boundaries from `adapt` (bit for bit) and its buckets, `Hashing`'s bins
//! (FarmHash64, and SipHash with a salt), lookups with a mask token and 0, 2 or 3
//! out-of-vocabulary ids.

use kiln::data::{CategoryEncoding, Discretization, Encoding, Hashing, IntegerLookup, StringLookup};

const FIXTURE: &str = include_str!("../fixtures/keras/lookup.txt");

const WORDS: [&str; 12] = ["b", "a", "c", "a", "b", "d", "setosa", "versicolor", "setosa", "versicolor", "a", "zz"];
const WORD_PROBE: [&str; 5] = ["a", "zz", "unseen", "setosa", "d"];
const WORD_ROWS: [[&str; 3]; 3] = [["a", "b", "a"], ["unseen", "d", "d"], ["zz", "zz", "c"]];
const INTS: [i64; 12] = [7, 3, 3, 9, 7, 100, -4, 3, 0, 9, 12, 12];
const INT_PROBE: [i64; 5] = [3, 12, 5, -4, 0];
const INT_ROWS: [[i64; 3]; 3] = [[3, 3, 9], [5, 100, 100], [0, -4, 7]];
/// The strings `Hashing` puts in bins (the last past FarmHash64's 64-byte path).
const HASHED: [&str; 5] =
    ["", "a", "hello world", "setosa", "a much longer string of more than sixty-four bytes, to reach the long path"];

fn reference(key: &str) -> Vec<f32> {
    kiln::testing::reference(FIXTURE, key).unwrap_or_else(|| panic!("{key} missing from lookup.txt"))
}

fn fields(key: &str) -> Vec<String> {
    let line = FIXTURE.lines().find(|l| l.split('\t').next() == Some(key)).unwrap_or_else(|| panic!("{key} missing"));
    line.split('\t').skip(1).map(str::to_string).collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn check(case: &str, vocab: Vec<String>, out: kiln::ndarray::Array2<f32>) {
    assert_eq!(vocab, fields(&format!("{case}.vocab")), "{case} vocabulary");
    let want = reference(&format!("{case}.out"));
    let shape: Vec<usize> = reference(&format!("{case}.shape")).iter().map(|&d| d as usize).collect();
    assert_eq!(out.len(), shape.iter().product::<usize>(), "{case} shape {:?} vs {shape:?}", out.shape());
    assert_eq!(out.iter().copied().collect::<Vec<_>>(), want, "{case}");
}

#[test]
fn string_lookup_matches_keras_in_every_mode() {
    let cases: [(&str, Option<usize>, Encoding); 5] = [
        ("string_int", None, Encoding::Int),
        ("string_max", Some(4), Encoding::Int),
        ("string_one_hot", None, Encoding::OneHot),
        ("string_multi_hot", None, Encoding::MultiHot),
        ("string_count", Some(5), Encoding::Count),
    ];
    for (case, max, mode) in cases {
        let mut l = StringLookup::new(max, mode);
        l.adapt(&strings(&WORDS)).unwrap();
        let out = match mode {
            Encoding::Int | Encoding::OneHot => l.encode(&strings(&WORD_PROBE)).unwrap(),
            _ => l.encode_rows(&WORD_ROWS.map(|r| strings(&r))).unwrap(),
        };
        check(case, l.vocabulary(), out);
    }
}

#[test]
fn integer_lookup_matches_keras_in_every_mode() {
    let cases: [(&str, Option<usize>, Encoding); 5] = [
        ("int_int", None, Encoding::Int),
        ("int_max", Some(4), Encoding::Int),
        ("int_one_hot", None, Encoding::OneHot),
        ("int_multi_hot", None, Encoding::MultiHot),
        ("int_count", None, Encoding::Count),
    ];
    for (case, max, mode) in cases {
        let mut l = IntegerLookup::new(max, mode);
        l.adapt(&INTS).unwrap();
        let out = match mode {
            Encoding::Int | Encoding::OneHot => l.encode(&INT_PROBE).unwrap(),
            _ => l.encode_rows(&INT_ROWS).unwrap(),
        };
        check(case, l.vocabulary().iter().map(i64::to_string).collect(), out);
    }
}

#[test]
fn category_encoding_matches_keras() {
    let ids = [[0usize, 3, 3], [1, 1, 2], [4, 0, 4]];
    for (name, mode) in [("one_hot", Encoding::OneHot), ("multi_hot", Encoding::MultiHot), ("count", Encoding::Count)] {
        let e = CategoryEncoding::new(5, mode).unwrap();
        let out = match mode {
            Encoding::OneHot => e.encode(&ids.map(|r| [r[0]])).unwrap(),
            _ => e.encode(&ids).unwrap(),
        };
        assert_eq!(out.iter().copied().collect::<Vec<_>>(), reference(&format!("encoding_{name}.out")), "{name}");
    }
    let e = CategoryEncoding::new(5, Encoding::Count).unwrap();
    let err = e.encode(&[[1usize, 5]]).unwrap_err().to_string();
    assert!(err.contains("row 0 holds id 5, outside 0..5"), "{err}");
    assert!(CategoryEncoding::new(5, Encoding::Int).is_err());
}

#[test]
fn discretization_learns_keras_boundaries_bit_for_bit() {
    let data = reference("discretize.data");
    let probe = reference("discretize.probe");
    for (case, bins, eps) in [("q4", 4, 0.01), ("q3", 3, 0.01), ("q7", 7, 0.05), ("q10", 10, 0.001)] {
        let d = Discretization::adapt(&data, bins, eps).unwrap();
        assert_eq!(d.boundaries(), reference(&format!("discretize_{case}.bins")), "{case}");
        let buckets: Vec<f32> = d.buckets(&probe).iter().map(|&b| b as f32).collect();
        assert_eq!(buckets, reference(&format!("discretize_{case}.out")), "{case}");
    }
    let small = Discretization::adapt(&[5.0, 1.0, 3.0, 3.0, 2.0], 3, 0.01).unwrap();
    assert_eq!(small.boundaries(), reference("discretize_small.bins"));
    let fixed = Discretization::new(vec![0.0, 1.0, 2.5]).unwrap();
    let buckets: Vec<f32> = fixed.buckets(&probe).iter().map(|&b| b as f32).collect();
    assert_eq!(buckets, reference("discretize_fixed.out"));
    assert!(Discretization::new(vec![1.0, 0.0]).is_err());
    assert!(Discretization::adapt(&[1.0, f32::NAN], 2, 0.01).is_err());
}

#[test]
fn lookups_round_trip_through_json_and_a_file_and_refuse_bad_input() {
    let mut l = StringLookup::new(None, Encoding::OneHot);
    assert!(l.encode(&strings(&["a"])).unwrap_err().to_string().contains("call adapt"));
    l.adapt(&strings(&WORDS)).unwrap();
    let dir = std::env::temp_dir().join(format!("kiln-lookup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("species.json");
    l.save(&path).unwrap();
    let back = StringLookup::load(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(back, l);
    let ints = IntegerLookup::with_vocabulary(vec![4, 2], Encoding::Int).unwrap();
    assert_eq!(IntegerLookup::from_json(&ints.to_json()).unwrap().ids(&[2, 4, 9]).unwrap(), [2, 1, 0]);
    let masked =
        IntegerLookup::with_vocabulary(vec![4, 2], Encoding::Int).unwrap().with_mask_token(0).with_num_oov_indices(2);
    let back = IntegerLookup::from_json(&masked.to_json()).unwrap();
    assert_eq!((back.ids(&[0, 4, 9]).unwrap(), &back), (vec![0, 3, 2], &masked));
    let err = IntegerLookup::with_vocabulary(vec![4, 4], Encoding::Int).unwrap_err().to_string();
    assert!(err.contains("holds 4 twice"), "{err}");
    let err = StringLookup::from_json(r#"{"max_tokens": null, "output_mode": "Int", "vocabulary": [1]}"#).unwrap_err();
    assert!(err.to_string().contains("`vocabulary`"), "{err}");
    let err = l.encode_rows(&[strings(&["a"])]).map(|_| ()).and_then(|_| {
        let mut counts = StringLookup::new(None, Encoding::Count);
        counts.adapt(&strings(&WORDS))?;
        counts.encode(&strings(&["a"])).map(|_| ())
    });
    assert!(err.unwrap_err().to_string().contains("use encode_rows"));
    assert!(StringLookup::new(Some(1), Encoding::Int).adapt(&strings(&WORDS)).is_err());
}

#[test]
fn hashing_puts_values_in_keras_bins() {
    let texts = HASHED;
    let bins = |h: &Hashing| h.bins(&texts).iter().map(|&b| b as f32).collect::<Vec<_>>();
    assert_eq!(bins(&Hashing::new(7, None).unwrap()), reference("hash_7.out"));
    assert_eq!(bins(&Hashing::new(5, Some("")).unwrap()), reference("hash_mask.out"));
    let h = Hashing::new(11, None).unwrap();
    let ints: Vec<f32> = [0, 7, -3, 123_456_789].iter().map(|&v| h.bin_int(v) as f32).collect();
    assert_eq!(ints, reference("hash_ints.out"));
    assert!(Hashing::new(1, Some("")).is_err());
}

#[test]
fn salted_hashing_puts_values_in_keras_bins() {
    let texts = HASHED;
    let bins = |h: Hashing| h.bins(&texts).iter().map(|&b| b as f32).collect::<Vec<_>>();
    assert_eq!(bins(Hashing::new(7, None).unwrap().with_salt([133, 137])), reference("hash_salt.out"));
    assert_eq!(bins(Hashing::new(5, None).unwrap().with_salt([133, 133])), reference("hash_salt_one.out"));
    assert_eq!(bins(Hashing::new(6, Some("")).unwrap().with_salt([1, 2])), reference("hash_salt_mask.out"));
    let h = Hashing::new(11, None).unwrap().with_salt([7, 9]);
    let ints: Vec<f32> = [0, 7, -3, 123_456_789].iter().map(|&v| h.bin_int(v) as f32).collect();
    assert_eq!(ints, reference("hash_salt_ints.out"));
}

/// Keras' `mask_token` (id 0 in int mode, dropped by the other modes, never learned) and
/// `num_oov_indices` (unknown strings spread by FarmHash64, integers by floor modulo; with 0,
/// an unknown value is an error).
#[test]
fn lookups_with_a_mask_and_several_oov_ids_match_keras() {
    let mut words = strings(&WORDS);
    words.extend(strings(&["", "", "b"]));
    let probe = strings(&["a", "", "unseen", "zz", "never", "d", "other"]);
    let rows = [["a", "", "a"], ["unseen", "never", "d"], ["", "", "c"]].map(|r| strings(&r));
    // Case, mask token, out-of-vocabulary ids, max_tokens, mode.
    type Case = (&'static str, Option<&'static str>, usize, Option<usize>, Encoding);
    let cases: [Case; 5] = [
        ("mask_string_int", Some(""), 2, None, Encoding::Int),
        ("mask_string_max", Some(""), 3, Some(7), Encoding::Int),
        ("mask_string_one_hot", Some(""), 1, None, Encoding::OneHot),
        ("mask_string_multi_hot", Some(""), 2, None, Encoding::MultiHot),
        ("mask_string_count", None, 3, None, Encoding::Count),
    ];
    for (case, mask, oov, max, mode) in cases {
        let mut l = StringLookup::new(max, mode).with_num_oov_indices(oov);
        if let Some(m) = mask {
            l = l.with_mask_token(m.to_string());
        }
        l.adapt(&words).unwrap();
        let out = match mode {
            Encoding::Int | Encoding::OneHot => l.encode(&probe).unwrap(),
            _ => l.encode_rows(&rows).unwrap(),
        };
        check(case, l.vocabulary(), out);
    }
    let mut strict = StringLookup::new(None, Encoding::Int).with_num_oov_indices(0);
    strict.adapt(&words).unwrap();
    check("oov_string_int", strict.vocabulary(), strict.encode(&strings(&["a", "zz", "d"])).unwrap());
    let err = strict.encode(&strings(&["a", "unseen"])).unwrap_err().to_string();
    assert!(err.contains("\"unseen\" is not in the vocabulary and num_oov_indices is 0"), "{err}");

    let mut ints = INTS.to_vec();
    ints.extend([0, 0]);
    let mut l = IntegerLookup::new(None, Encoding::Int).with_mask_token(0).with_num_oov_indices(3);
    l.adapt(&ints).unwrap();
    let vocab = l.vocabulary().iter().map(i64::to_string).collect();
    check("mask_int_int", vocab, l.encode(&[3, 0, 5, -7, 12, 11, 0]).unwrap());
    let mut l = IntegerLookup::new(None, Encoding::Count).with_mask_token(0).with_num_oov_indices(2);
    l.adapt(&ints).unwrap();
    let vocab = l.vocabulary().iter().map(i64::to_string).collect();
    check("mask_int_count", vocab, l.encode_rows(&[[3, 0, 5], [-7, -7, 12]]).unwrap());

    // Ids back to values.
    let mut l = StringLookup::new(None, Encoding::Int).with_mask_token(String::new()).with_num_oov_indices(2);
    l.adapt(&words).unwrap();
    assert_eq!(l.vocabulary(), fields("invert_string.vocab"));
    assert_eq!(l.invert(&[0, 1, 2, 3, 4, 9, 10, 42]), fields("invert_string.out"));
    let mut l = IntegerLookup::new(None, Encoding::Int);
    l.adapt(&INTS).unwrap();
    let back: Vec<f32> = l.invert(&[0, 1, 2, 7, 8, 100]).iter().map(|&v| v as f32).collect();
    assert_eq!(back, reference("invert_int.out"));

    // A mask token that is also a learned value, and max_tokens with no room left to learn.
    let given = StringLookup::with_vocabulary(strings(&["a", "b"]), Encoding::Int).unwrap().with_mask_token("a".into());
    let err = given.encode(&strings(&["b"])).unwrap_err().to_string();
    assert!(err.contains("\"a\" is also a learned value"), "{err}");
    let err =
        StringLookup::new(Some(3), Encoding::Int).with_mask_token(String::new()).with_num_oov_indices(2).adapt(&words);
    assert!(err.unwrap_err().to_string().contains("beside the 3 mask and out-of-vocabulary id(s)"));
}
