//! The model's random stream: every random choice a layer makes while training (dropout masks,
//! noise) is drawn from it, so a run is reproducible from the model's seed and a checkpoint that
//! stores the stream's position resumes bit-identically.
//!
//! It is counter-based (SplitMix64 over `seed` and a counter): its whole state is two integers,
//! it costs a few instructions per draw, and it needs no allocation.

/// A seeded, counter-based stream of random numbers owned by a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stream {
    seed: u64,
    counter: u64,
}

impl Stream {
    /// The stream of a model created from `seed`, at its start.
    pub fn new(seed: u64) -> Self {
        Stream { seed: seed ^ 0xA076_1D64_78BD_642F, counter: 0 }
    }

    /// How many numbers have been drawn (saved in checkpoints).
    pub fn position(&self) -> u64 {
        self.counter
    }

    /// Moves to a position, as restored from a checkpoint.
    pub fn set_position(&mut self, position: u64) {
        self.counter = position;
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.counter = self.counter.wrapping_add(1);
        let mut z = self.seed.wrapping_add(self.counter.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in `[0, 1)` with 24 random bits.
    #[inline]
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// A standard normal number (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64);
        let u2 = (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers_and_positions_resume() {
        let (mut a, mut b) = (Stream::new(7), Stream::new(7));
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        assert_eq!(xs, (0..5).map(|_| b.next_u64()).collect::<Vec<_>>());
        let mut c = Stream::new(7);
        c.set_position(3);
        assert_eq!(c.next_u64(), xs[3]);
        assert_ne!(Stream::new(8).next_u64(), xs[0]);
    }

    #[test]
    fn uniform_is_in_range_and_roughly_uniform() {
        let mut s = Stream::new(1);
        let v: Vec<f32> = (0..10_000).map(|_| s.uniform()).collect();
        assert!(v.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
        let n: Vec<f32> = (0..10_000).map(|_| s.normal()).collect();
        let m = n.iter().sum::<f32>() / n.len() as f32;
        let var = n.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / n.len() as f32;
        assert!(m.abs() < 0.05 && (var - 1.0).abs() < 0.05, "mean {m} var {var}");
    }
}
