//! A small Prometheus registry: counters and gauges keyed by name and
//! labels, rendered in the text exposition format on `/metrics`. Enough for
//! nisvakt's handful of figures without another dependency.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

type Key = (String, Vec<(String, String)>);

#[derive(Debug, Default)]
struct Inner {
    counters: BTreeMap<Key, f64>,
    gauges: BTreeMap<Key, f64>,
}

/// Shared metrics of one process.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<Inner>>,
}

fn key(name: &str, labels: &[(&str, &str)]) -> Key {
    (
        name.to_string(),
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(&self, name: &str, labels: &[(&str, &str)]) {
        self.add(name, labels, 1.0);
    }

    /// Adds `v` to a counter.
    pub fn add(&self, name: &str, labels: &[(&str, &str)], v: f64) {
        if let Ok(mut g) = self.inner.lock() {
            *g.counters.entry(key(name, labels)).or_default() += v;
        }
    }

    /// Sets a gauge.
    pub fn set(&self, name: &str, labels: &[(&str, &str)], v: f64) {
        if let Ok(mut g) = self.inner.lock() {
            g.gauges.insert(key(name, labels), v);
        }
    }

    /// A counter's value (for tests).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.inner
            .lock()
            .ok()
            .and_then(|g| g.counters.get(&key(name, labels)).copied())
            .unwrap_or(0.0)
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let Ok(g) = self.inner.lock() else {
            return String::new();
        };
        let mut out = String::new();
        let mut last = "";
        for (kind, map) in [("counter", &g.counters), ("gauge", &g.gauges)] {
            for ((name, labels), v) in map.iter() {
                if name != last {
                    out.push_str(&format!("# TYPE {name} {kind}\n"));
                }
                let l: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| {
                        format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
                    })
                    .collect();
                if l.is_empty() {
                    out.push_str(&format!("{name} {v}\n"));
                } else {
                    out.push_str(&format!("{name}{{{}}} {v}\n", l.join(",")));
                }
                last = name;
            }
            last = "";
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_the_text_format() {
        let m = Metrics::default();
        m.inc("x_total", &[("a", "b")]);
        m.inc("x_total", &[("a", "b")]);
        m.set("up", &[], 1.0);
        let r = m.render();
        assert!(
            r.contains("# TYPE x_total counter\nx_total{a=\"b\"} 2\n"),
            "{r}"
        );
        assert!(r.contains("# TYPE up gauge\nup 1\n"), "{r}");
    }
}
