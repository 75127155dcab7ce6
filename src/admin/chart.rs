//! The overview's chart: decisions per minute over the last hour as stacked bars, drawn by
//! the server as SVG (no script, no external asset; colours are attributes, not CSS, so the
//! page's style policy holds).

use maud::{html, Markup};

use super::view::Minute;

const WIDTH: u64 = 720;
const HEIGHT: u64 = 200;
/// Room for the scale on the left and the time axis below.
const LEFT: u64 = 48;
const BOTTOM: u64 = 22;

/// Allowed, refused, would-be refused: name and colour.
pub(crate) const SERIES: [(&str, &str); 3] = [
    ("allowed", "#3f8f5a"),
    ("refused", "#c0392b"),
    ("would be refused", "#e6a23c"),
];

/// The chart of `minutes` (oldest first).
pub(crate) fn decisions(minutes: &[Minute]) -> Markup {
    let top = minutes
        .iter()
        .map(|m| m.allowed + m.refused + m.would_refuse)
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_h = HEIGHT - BOTTOM - 6;
    let slot = (WIDTH - LEFT) as f64 / minutes.len().max(1) as f64;
    let mut bars = Vec::new();
    for (i, m) in minutes.iter().enumerate() {
        let x = LEFT as f64 + i as f64 * slot + 1.0;
        let mut base = (HEIGHT - BOTTOM) as f64;
        for ((name, colour), value) in SERIES.iter().zip([m.allowed, m.refused, m.would_refuse]) {
            if value > 0 {
                let h = (plot_h as f64 * value as f64 / top as f64).max(1.0);
                base -= h;
                let title = format!("{}: {value} {name}", m.minute);
                bars.push((x, base, h, *colour, title));
            }
        }
    }
    let width = format!("{:.1}", (slot - 2.0).max(1.0));
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (HEIGHT) }
            role="img" aria-label="Decisions per minute, last hour" id="chart" class="chart" {
            title { "Decisions per minute, last hour (peak " (top) ")" }
            line x1=(LEFT) y1="6" x2=(LEFT) y2=(HEIGHT - BOTTOM) stroke="#999" {}
            line x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH) y2=(HEIGHT - BOTTOM) stroke="#999" {}
            text x=(LEFT - 4) y="14" text-anchor="end" font-size="11" fill="#555" { (top) }
            text x=(LEFT - 4) y=(HEIGHT - BOTTOM) text-anchor="end" font-size="11" fill="#555" { "0" }
            text x=(LEFT) y=(HEIGHT - 6) font-size="11" fill="#555" { "−60 min" }
            text x=(WIDTH - 2) y=(HEIGHT - 6) text-anchor="end" font-size="11" fill="#555" { "now" }
            @for (x, y, h, colour, title) in &bars {
                rect x=(format!("{x:.1}")) y=(format!("{y:.1}")) width=(width)
                    height=(format!("{h:.1}")) fill=(colour) {
                    title { (title) }
                }
            }
        }
    }
}
