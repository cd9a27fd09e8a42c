//! CPU quantities (unloop-core's `resources` has memory): `250m`, `1`, `1.5`, and the nanocores
//! (`12345678n`) and microcores (`u`) the metrics API reports.

/// Cores in a CPU quantity. None when unparseable.
pub fn cpu_cores(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "u" => 1e-6,
        "n" => 1e-9,
        "k" => 1e3,
        _ => return None,
    };
    Some(n * scale)
}

/// Whole millicores, at least 1m: `250m`, or whole cores when exact (`2`).
pub fn cpu_text(cores: f64) -> String {
    let milli = (cores * 1000.0).ceil().max(1.0) as u64;
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

    #[test]
    fn cpu_quantities() {
        assert_eq!(cpu_cores("250m"), Some(0.25));
        assert_eq!(cpu_cores("2"), Some(2.0));
        assert_eq!(cpu_cores("1.5"), Some(1.5));
        assert!((cpu_cores("12345678n").unwrap_or_default() - 0.012345678).abs() < 1e-12);
        assert_eq!(cpu_cores("lots"), None);
        assert_eq!(cpu_text(0.25), "250m");
        assert_eq!(cpu_text(2.0), "2");
        assert_eq!(cpu_text(0.0), "1m");
        assert_eq!(cpu_text(cpu_round_up(0.0123)), "20m");
        assert_eq!(cpu_text(cpu_round_up(1.23)), "1300m");
    }
}
