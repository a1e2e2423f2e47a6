//! Splitting a batch into chunks of samples for the threads, the same way whatever the threads.

/// The recurrent and attention layers run a batch as independent chunks of samples, in parallel
/// on the threads there are. The chunks depend on the batch size only (never on the threads), so
/// results do not depend on the thread count: two chunks from 8 samples, one more per 32 samples
/// beyond 64, at most [`MAX_CHUNKS`].
pub(crate) const MAX_CHUNKS: usize = 8;

/// The chunks of a batch of `n` samples: their first samples (and `n` at the end), and how many.
pub(crate) fn chunks(n: usize) -> ([usize; MAX_CHUNKS + 1], usize) {
    let count = match n {
        0..8 => 1,
        8..96 => 2,
        _ => (n / 32).min(MAX_CHUNKS),
    };
    let per = n.div_ceil(count).next_multiple_of(2);
    let mut starts = [n; MAX_CHUNKS + 1];
    (0..count).for_each(|c| starts[c] = (c * per).min(n));
    (starts, count)
}

/// `buf` (chunk-major, `per` values per sample) cut at the chunks' starts.
pub(crate) fn cut<'a>(
    buf: &'a mut [f32],
    (starts, count): ([usize; MAX_CHUNKS + 1], usize),
    per: usize,
) -> [&'a mut [f32]; MAX_CHUNKS] {
    let mut out: [&'a mut [f32]; MAX_CHUNKS] = std::array::from_fn(|_| Default::default());
    let mut rest = buf;
    for (c, part) in out.iter_mut().enumerate().take(count) {
        let len = ((starts[c + 1] - starts[c]) * per).min(rest.len());
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
        *part = head;
        rest = tail;
    }
    out
}
