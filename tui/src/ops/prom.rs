//! Reading the samples of a Prometheus text exposition (what `GET /metrics` serves).
//!
//! Only what the operations screen needs: each sample line's metric name, labels and value.
//! Comments (`# HELP`, `# TYPE`, `# EOF`), timestamps and exemplars are skipped. A line
//! that does not parse is skipped too, not an error: the screen shows what it can read of
//! a scrape rather than nothing.

/// One sample: `name{label="value",…} 12.5`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(sample)
        .collect()
}

fn sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let (labels, rest) = if line[name_end..].starts_with('{') {
        let (labels, after) = labels(&line[name_end + 1..])?;
        (labels, after)
    } else {
        (Vec::new(), &line[name_end..])
    };
    // The value is the first field; a timestamp or ` # {exemplar}` may follow.
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// `k="v",k2="v2"}` → the pairs and what follows the `}`. Values may hold escaped `\"`,
/// `\\` and `\n`, and any of `,` `}` `=` inside their quotes.
fn labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start_matches(',');
        if let Some(rest) = s.strip_prefix('}') {
            return Some((out, rest));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_string();
        let mut chars = s[eq + 1..].char_indices();
        if chars.next()?.1 != '"' {
            return None;
        }
        let mut value = String::new();
        let mut escaped = false;
        let mut end = None;
        for (i, c) in chars {
            if escaped {
                value.push(if c == 'n' { '\n' } else { c });
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = Some(eq + 1 + i + 1);
                break;
            } else {
                value.push(c);
            }
        }
        out.push((key, value));
        s = &s[end?..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_samples_with_and_without_labels_and_skips_the_rest() {
        let text = r#"# HELP tix_bus_published_events Events stored.
# TYPE tix_bus_published_events counter
tix_bus_published_events_total{subject="order:created"} 12
tix_bus_published_events_total{subject="odd \"one\", {x}=y\\z"} 3 1700000000
tix_bus_connected_clients 7
tix_bus_fsync_duration_seconds_bucket{le="+Inf"} 9 # {trace="a"} 1.0
garbage line without value
broken{label="unterminated} 1
# EOF
"#;
        let s = parse(text);
        assert_eq!(s.len(), 4, "{s:?}");
        assert_eq!(s[0].name, "tix_bus_published_events_total");
        assert_eq!(s[0].label("subject"), Some("order:created"));
        assert_eq!(s[0].value, 12.0);
        assert_eq!(s[1].label("subject"), Some(r#"odd "one", {x}=y\z"#));
        assert_eq!(s[1].value, 3.0);
        assert_eq!(
            (s[2].name.as_str(), s[2].value),
            ("tix_bus_connected_clients", 7.0)
        );
        assert_eq!(s[3].label("le"), Some("+Inf"));
    }
}
