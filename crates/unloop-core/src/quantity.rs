//! Kubernetes resource quantities, memory and CPU, read by one parser: `128Mi`, `1.5Gi`, `1Pi`,
//! `8Ei`, `500M`, `250m`, `12345678n`, `1e3`, `1E-3`, `+1`, `.5`.
//!
//! The value is kept exact (an integer mantissa, a power of ten and a power of two) and converted
//! with checked arithmetic: a quantity too large for the answer is [`QuantityError::Overflow`],
//! never a wrapped, truncated or zero value. Memory is whole bytes, rounded up as Kubernetes rounds
//! a quantity's value; CPU is cores as `f64` (a fraction is the point of CPU quantities).

use std::fmt;

/// Why a text is not a usable quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantityError {
    /// Nothing, or no digits where the number goes.
    Empty,
    /// Not a number followed by a suffix Kubernetes knows.
    Syntax,
    /// Too large for the unit asked for.
    Overflow,
    /// Below zero where only amounts make sense (memory).
    Negative,
}

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QuantityError::Empty => "no number",
            QuantityError::Syntax => {
                "not a Kubernetes quantity (a number and one of n u m k M G T P E Ki Mi Gi Ti Pi Ei or e<exponent>)"
            }
            QuantityError::Overflow => "too large",
            QuantityError::Negative => "negative",
        })
    }
}

impl std::error::Error for QuantityError {}

/// An exact quantity: `(-1)^negative * mantissa * 10^exp10 * 2^exp2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    pub negative: bool,
    pub mantissa: u128,
    pub exp10: i32,
    pub exp2: u32,
}

/// Decimal exponents beyond this are refused as syntax (Kubernetes' own parser stops far lower);
/// it keeps exponent arithmetic away from i32's edges.
const MAX_EXPONENT: i32 = 1_000;

impl Quantity {
    /// Parses Kubernetes' quantity grammar: sign, digits with an optional fraction (`.5`, `5.`),
    /// then a binary (`Ki`..`Ei`), decimal (`n u m k M G T P E`) or exponent (`e3`, `E-3`) suffix.
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        let s = text.trim();
        if s.is_empty() {
            return Err(QuantityError::Empty);
        }
        let (negative, s) = match s.as_bytes()[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let num_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(num_end);
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        if int.is_empty() && frac.is_empty() {
            return Err(QuantityError::Empty);
        }
        if frac.contains('.') {
            return Err(QuantityError::Syntax);
        }
        // Trailing zeros of the fraction add digits, not value.
        let frac = frac.trim_end_matches('0');
        let mut mantissa: u128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(u128::from(b - b'0')))
                .ok_or(QuantityError::Overflow)?;
        }
        let mut exp10 = -(frac.len().min(MAX_EXPONENT as usize) as i32);
        if frac.len() > MAX_EXPONENT as usize {
            return Err(QuantityError::Syntax);
        }
        let mut exp2 = 0;
        match suffix {
            "" => {}
            "n" => exp10 -= 9,
            "u" => exp10 -= 6,
            "m" => exp10 -= 3,
            "k" => exp10 += 3,
            "M" => exp10 += 6,
            "G" => exp10 += 9,
            "T" => exp10 += 12,
            "P" => exp10 += 15,
            "E" => exp10 += 18,
            "Ki" => exp2 = 10,
            "Mi" => exp2 = 20,
            "Gi" => exp2 = 30,
            "Ti" => exp2 = 40,
            "Pi" => exp2 = 50,
            "Ei" => exp2 = 60,
            _ => {
                let exp = suffix
                    .strip_prefix(['e', 'E'])
                    .ok_or(QuantityError::Syntax)?;
                let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(QuantityError::Syntax);
                }
                let e: i32 = exp
                    .parse()
                    .ok()
                    .filter(|e: &i32| e.abs() <= MAX_EXPONENT)
                    .ok_or(QuantityError::Syntax)?;
                exp10 += e;
            }
        }
        Ok(Quantity {
            negative: negative && mantissa != 0,
            mantissa,
            exp10,
            exp2,
        })
    }

    /// The value in whole units, rounded up (away from zero) as Kubernetes rounds `Value()`.
    pub fn to_u64_ceil(&self) -> Result<u64, QuantityError> {
        if self.negative {
            return Err(QuantityError::Negative);
        }
        if self.mantissa == 0 {
            return Ok(0);
        }
        let p2 = 1u128 << self.exp2;
        let value = if self.exp10 >= 0 {
            pow10(self.exp10 as u32)
                .and_then(|p| self.mantissa.checked_mul(p))
                .and_then(|v| v.checked_mul(p2))
                .ok_or(QuantityError::Overflow)?
        } else {
            let k = self.exp10.unsigned_abs();
            // Multiply first so `1.5Gi` is exact; divide first only when that would overflow.
            match self.mantissa.checked_mul(p2) {
                Some(v) => div_ceil_pow10(v, k),
                None => div_ceil_pow10(self.mantissa, k)
                    .checked_mul(p2)
                    .ok_or(QuantityError::Overflow)?,
            }
        };
        u64::try_from(value).map_err(|_| QuantityError::Overflow)
    }

    /// The value as a float (CPU cores): close, not exact, and never infinite.
    pub fn to_f64(&self) -> Result<f64, QuantityError> {
        let v = self.mantissa as f64 * 10f64.powi(self.exp10) * 2f64.powi(self.exp2 as i32);
        if !v.is_finite() {
            return Err(QuantityError::Overflow);
        }
        Ok(if self.negative { -v } else { v })
    }
}

fn pow10(e: u32) -> Option<u128> {
    10u128.checked_pow(e)
}

/// `v / 10^k` rounded up; 10^39 and more exceed any u128, so a positive sliver rounds up to 1.
fn div_ceil_pow10(v: u128, k: u32) -> u128 {
    match pow10(k) {
        Some(p) => v.div_ceil(p),
        None => u128::from(v > 0),
    }
}

/// Bytes in a memory quantity (`256Mi`, `1Pi`, `1.5Gi`, `1e9`), rounded up to a whole byte.
pub fn bytes(q: &str) -> Result<u64, QuantityError> {
    Quantity::parse(q)?.to_u64_ceil()
}

/// Cores in a CPU quantity (`250m`, `2`, `1.5`, and the metrics API's `12345678n`).
pub fn cores(q: &str) -> Result<f64, QuantityError> {
    Quantity::parse(q)?.to_f64()
}

const MI: u64 = 1024 * 1024;
const GI: u64 = 1024 * MI;

/// A human and Kubernetes-friendly memory spelling: whole Gi when exact, else Mi rounded up.
pub fn bytes_text(bytes: u64) -> String {
    if bytes >= GI && bytes.is_multiple_of(GI) {
        format!("{}Gi", bytes / GI)
    } else {
        format!("{}Mi", bytes.div_ceil(MI))
    }
}

/// Rounds up to a tidy size for a recommendation: a multiple of 64Mi (the largest one below
/// `u64::MAX` for absurd inputs, never a wrapped small value).
pub fn round_up_tidy(bytes: u64) -> u64 {
    const STEP: u64 = 64 * MI;
    bytes
        .div_ceil(STEP)
        .max(1)
        .checked_mul(STEP)
        .unwrap_or(u64::MAX / STEP * STEP)
}

/// Whole millicores, at least 1m: `250m`, or whole cores when exact (`2`). Rounded up, less a
/// float's error: 8215.431 cores times 1000 is 8215431.000000001, which is 8215431m.
pub fn cpu_text(cores: f64) -> String {
    let milli = (cores * 1000.0 - 1e-6).ceil().max(1.0) as u64;
    if milli.is_multiple_of(1000) {
        format!("{}", milli / 1000)
    } else {
        format!("{milli}m")
    }
}

/// A CPU amount rounded up to a tidy step: 10m below 1 core, 100m above.
pub fn cpu_round_up(cores: f64) -> f64 {
    let step = if cores < 1.0 { 0.01 } else { 0.1 };
    ((cores / step - 1e-9).ceil() * step).max(0.01)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn memory_every_suffix() {
        let cases: [(&str, u64); 24] = [
            ("0", 0),
            ("128", 128),
            ("1k", 1_000),
            ("1M", 1_000_000),
            ("1G", 1_000_000_000),
            ("1T", 1_000_000_000_000),
            ("1P", 1_000_000_000_000_000),
            ("1E", 1_000_000_000_000_000_000),
            ("1Ki", 1 << 10),
            ("256Mi", 256 << 20),
            ("1Gi", 1 << 30),
            ("1Ti", 1 << 40),
            ("1Pi", 1 << 50),
            ("1Ei", 1 << 60),
            ("8Ei", 1 << 63),
            ("1.5Gi", 3 << 29),
            (".5Ki", 512),
            ("5.Ki", 5 << 10),
            ("+1Mi", 1 << 20),
            ("1e3", 1_000),
            ("1E3", 1_000),
            ("129e6", 129_000_000),
            ("1500m", 2),
            ("1n", 1),
        ];
        for (text, want) in cases {
            assert_eq!(bytes(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(bytes(""), Err(QuantityError::Empty));
        assert_eq!(bytes("Mi"), Err(QuantityError::Empty));
        assert_eq!(bytes("lots"), Err(QuantityError::Empty));
        assert_eq!(bytes("1Xi"), Err(QuantityError::Syntax));
        assert_eq!(bytes("1.2.3"), Err(QuantityError::Syntax));
        assert_eq!(bytes("1e"), Err(QuantityError::Syntax));
        assert_eq!(bytes("1 Gi"), Err(QuantityError::Syntax));
        assert_eq!(bytes("16Ei"), Err(QuantityError::Overflow));
        assert_eq!(bytes("1e30"), Err(QuantityError::Overflow));
        assert_eq!(
            bytes("99999999999999999999999999999999999999999999"),
            Err(QuantityError::Overflow)
        );
        assert_eq!(bytes("-1Gi"), Err(QuantityError::Negative));
        assert_eq!(bytes("-0"), Ok(0));
        assert_eq!(bytes("1e-9000"), Err(QuantityError::Syntax));
        assert_eq!(bytes("1e-900"), Ok(1));
        assert_eq!(
            bytes("0.000000000000000000000000000000000000000001Ki"),
            Ok(1)
        );
    }

    #[test]
    fn cpu() {
        assert_eq!(cores("250m"), Ok(0.25));
        assert_eq!(cores("2"), Ok(2.0));
        assert_eq!(cores("1.5"), Ok(1.5));
        assert_eq!(cores("-1"), Ok(-1.0));
        assert!((cores("12345678n").unwrap_or_default() - 0.012345678).abs() < 1e-12);
        assert!((cores("1234u").unwrap_or_default() - 0.001234).abs() < 1e-12);
        assert_eq!(cores("1e1000"), Err(QuantityError::Overflow));
        assert_eq!(cpu_text(0.25), "250m");
        assert_eq!(cpu_text(2.0), "2");
        assert_eq!(cpu_text(0.0), "1m");
        assert_eq!(cpu_text(cpu_round_up(0.0123)), "20m");
        assert_eq!(cpu_text(cpu_round_up(1.23)), "1300m");
    }

    #[test]
    fn texts_and_tidy_sizes() {
        assert_eq!(bytes_text(512 << 20), "512Mi");
        assert_eq!(bytes_text(2 << 30), "2Gi");
        assert_eq!(bytes_text(1 << 50), "1048576Gi");
        assert_eq!(round_up_tidy(1), 64 << 20);
        assert_eq!(round_up_tidy(u64::MAX) % (64 << 20), 0);
        assert!(round_up_tidy(u64::MAX) > u64::MAX / 2);
    }

    const SUFFIXES: [(&str, u32, i32); 15] = [
        ("", 0, 0),
        ("k", 0, 3),
        ("M", 0, 6),
        ("G", 0, 9),
        ("T", 0, 12),
        ("P", 0, 15),
        ("E", 0, 18),
        ("Ki", 10, 0),
        ("Mi", 20, 0),
        ("Gi", 30, 0),
        ("Ti", 40, 0),
        ("Pi", 50, 0),
        ("Ei", 60, 0),
        ("e3", 0, 3),
        ("E6", 0, 6),
    ];

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = bytes(&s);
            let _ = cores(&s);
        }

        #[test]
        fn never_panics_near_the_grammar(s in "[-+]?[0-9]{0,45}(\\.[0-9]{0,45})?([numkMGTPE]|[KMGTPE]i|[eE][-+]?[0-9]{1,6})?") {
            let _ = bytes(&s);
            let _ = cores(&s);
        }

        /// An integer with any suffix reads back as integer * multiplier, or as Overflow exactly
        /// when that product does not fit a u64.
        #[test]
        fn integers_round_trip(n in any::<u64>(), i in 0..SUFFIXES.len()) {
            let (suffix, exp2, exp10) = SUFFIXES[i];
            let want = u128::from(n)
                .checked_mul(10u128.pow(exp10 as u32))
                .and_then(|v| v.checked_mul(1u128 << exp2))
                .and_then(|v| u64::try_from(v).ok());
            let got = bytes(&format!("{n}{suffix}"));
            match want {
                Some(v) => prop_assert_eq!(got, Ok(v)),
                None => prop_assert_eq!(got, Err(QuantityError::Overflow)),
            }
        }

        /// What [`bytes_text`] writes reads back as at least the bytes given, within one Mi.
        #[test]
        fn text_round_trips(n in 0u64..(1 << 62)) {
            let back = bytes(&bytes_text(n));
            prop_assert!(back.is_ok());
            let back = back.unwrap_or_default();
            prop_assert!(back >= n && back - n < MI);
        }

        /// Millicores written by [`cpu_text`] read back as the same millicores.
        #[test]
        fn cpu_text_round_trips(milli in 1u64..10_000_000) {
            let text = cpu_text(milli as f64 / 1000.0);
            let back = cores(&text).unwrap_or(-1.0);
            prop_assert!(((back * 1000.0).round() as u64) == milli, "{} -> {}", text, back);
        }
    }
}
