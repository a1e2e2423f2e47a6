//! The message a failed check returns, built without allocation in a const context.

/// A message built in a const context: what a failed check returns, and the generated code
/// panics with (so rustc reports it at the user's code, with no note into kiln's).
pub struct Msg {
    buf: [u8; 240],
    at: usize,
}

impl Default for Msg {
    fn default() -> Self {
        Msg::new()
    }
}

impl Msg {
    /// An empty message, to build with [`str`](Msg::str), [`num`](Msg::num) and
    /// [`shape`](Msg::shape).
    pub const fn new() -> Self {
        Msg { buf: [b' '; 240], at: 0 }
    }

    /// The message followed by `s`.
    pub const fn str(mut self, s: &str) -> Self {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() && self.at < self.buf.len() {
            self.buf[self.at] = b[i];
            self.at += 1;
            i += 1;
        }
        self
    }

    /// The message followed by `v` in decimal.
    pub const fn num(mut self, v: usize) -> Self {
        let mut digits = [0u8; 20];
        let (mut n, mut len) = (v, 0);
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        while len > 0 && self.at < self.buf.len() {
            len -= 1;
            self.buf[self.at] = digits[len];
            self.at += 1;
        }
        self
    }

    /// `[4, 16]`.
    pub const fn shape(mut self, s: &[usize]) -> Self {
        self = self.str("[");
        let mut i = 0;
        while i < s.len() {
            if i > 0 {
                self = self.str(", ");
            }
            self = self.num(s[i]);
            i += 1;
        }
        self.str("]")
    }

    /// The message.
    pub const fn text(&self) -> &str {
        let (msg, _) = self.buf.split_at(self.at);
        match core::str::from_utf8(msg) {
            Ok(s) => s,
            Err(_) => "shape mismatch",
        }
    }
}
