//! Writing gauges and counters in the Prometheus text exposition format, for the figures
//! each server writes into its scrape itself rather than keeping them in the recorder.

use std::fmt::Write;

/// A family of samples: its header once, then one sample per label set.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Family<'a> {
    /// Values that go up and down.
    pub fn gauge(out: &'a mut String, name: &'static str, help: &str) -> Self {
        Self::new(out, name, help, "gauge")
    }

    /// Values that only grow while the process lives (`name` ends in `_total`).
    pub fn counter(out: &'a mut String, name: &'static str, help: &str) -> Self {
        Self::new(out, name, help, "counter")
    }

    fn new(out: &'a mut String, name: &'static str, help: &str, kind: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Self { out, name }
    }

    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape(val));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
        self
    }
}

/// Label values may hold any text; the format reserves backslash, quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_has_one_header_and_escaped_labels() {
        let mut out = String::new();
        Family::gauge(&mut out, "lag", "how far behind")
            .sample(&[("relay", "a\"b\\c\nd")], 2.0)
            .sample(&[("relay", "x"), ("partition", "1")], 0.5)
            .sample(&[], 7.0);
        assert_eq!(
            out,
            "# HELP lag how far behind\n# TYPE lag gauge\n\
             lag{relay=\"a\\\"b\\\\c\\nd\"} 2\n\
             lag{relay=\"x\",partition=\"1\"} 0.5\n\
             lag 7\n"
        );
    }
}
