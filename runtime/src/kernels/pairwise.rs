//! Pairwise summation of partial sums, for the long reductions of training (BatchNormalization's
//! batch statistics, a convolution's kernel gradient): summing n values one after the other in
//! f32 loses up to n·ε, summing them as a binary tree of blocks loses about block·ε + log₂(n)·ε.
//! The blocks and the tree depend on the row count alone, never on the threads, so results stay
//! the same whatever the thread count.

/// Adds the `parts.len() / w` arrays of `w` values in `parts` pairwise (neighbours first, then
/// neighbours' sums, ...), in place, and returns the total (the first `w` values of `parts`).
pub fn tree_sum(parts: &mut [f32], w: usize) -> &[f32] {
    let mut n = parts.len().checked_div(w).unwrap_or(0);
    while n > 1 {
        for i in 0..n / 2 {
            for k in 0..w {
                parts[i * w + k] = parts[2 * i * w + k] + parts[(2 * i + 1) * w + k];
            }
        }
        if n % 2 == 1 {
            parts.copy_within((n - 1) * w..n * w, (n / 2) * w);
        }
        n = n.div_ceil(2);
    }
    &parts[..w.min(parts.len())]
}

/// The partial sums of `blocks` blocks, each written by `part(b, slot)` over a slot of `len`
/// values, added as a binary tree (a cascade: block pairs, then pairs of pairs, ...) keeping
/// at most log₂(blocks) + 1 partial sums in `stack`; the total goes to `out`.
pub fn cascade(blocks: usize, len: usize, stack: &mut Vec<f32>, out: &mut [f32], mut part: impl FnMut(usize, &mut [f32])) {
    let mut levels = [0u32; 66];
    let mut depth = 0;
    for b in 0..blocks {
        if stack.len() < (depth + 1) * len {
            stack.resize((depth + 1) * len, 0.0);
        }
        part(b, &mut stack[depth * len..(depth + 1) * len]);
        levels[depth] = 0;
        depth += 1;
        // Two sums of the same number of blocks become one of twice as many.
        while depth >= 2 && levels[depth - 1] == levels[depth - 2] {
            add_top(stack, len, depth);
            levels[depth - 2] += 1;
            depth -= 1;
        }
    }
    while depth >= 2 {
        add_top(stack, len, depth);
        depth -= 1;
    }
    if depth == 0 {
        out.fill(0.0);
    } else {
        out.copy_from_slice(&stack[..len]);
    }
}

/// Adds the top partial sum of the stack (the `depth`-th) into the one below it.
fn add_top(stack: &mut [f32], len: usize, depth: usize) {
    let (below, top) = stack[(depth - 2) * len..depth * len].split_at_mut(len);
    below.iter_mut().zip(top.iter()).for_each(|(a, b)| *a += b);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2²⁰ copies of 0.1: one after the other in f32 the sum is off by about 1%; pairwise it is
    /// within a few units in the last place, and the cascade and the tree agree.
    #[test]
    fn pairwise_sums_stay_close_where_sequential_ones_drift() {
        let n = 1 << 20;
        let sequential: f32 = (0..n).map(|_| 0.1f32).sum();
        let exact = n as f64 * 0.1f32 as f64;
        assert!((sequential as f64 - exact).abs() / exact > 1e-3, "{sequential}");
        let mut parts = vec![0.1f32; n];
        let tree = tree_sum(&mut parts, 1)[0];
        assert!((tree as f64 - exact).abs() / exact < 1e-6, "{tree}");
        let (mut stack, mut out) = (Vec::new(), [0.0f32]);
        cascade(n / 64, 1, &mut stack, &mut out, |_, slot| slot[0] = (0..64).map(|_| 0.1f32).sum());
        assert!((out[0] as f64 - exact).abs() / exact < 1e-6, "{}", out[0]);
        assert!(stack.len() <= 16, "log₂ of the blocks: {}", stack.len());
    }

    #[test]
    fn every_block_counts_once_for_any_count() {
        for blocks in 0..40 {
            let (mut stack, mut out) = (Vec::new(), [0.0f32; 2]);
            cascade(blocks, 2, &mut stack, &mut out, |b, slot| slot.copy_from_slice(&[b as f32, 1.0]));
            assert_eq!(out, [(blocks * blocks.saturating_sub(1) / 2) as f32, blocks as f32], "{blocks}");
            let mut parts: Vec<f32> = (0..blocks).flat_map(|b| [b as f32, 1.0]).collect();
            if blocks > 0 {
                assert_eq!(tree_sum(&mut parts, 2), &out[..], "{blocks}");
            }
        }
    }
}
