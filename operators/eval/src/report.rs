//! Reports from the evaluation history: the latest run as a table shaped like the model card's, the
//! Matryoshka curve (each metric against dim) and each metric over time per dim, as SVG drawn here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::history::HistoryRow;

/// The card's columns, in its order.
pub const CARD_METRICS: [(&str, &str); 7] = [
    ("cosine_accuracy@1", "acc@1"),
    ("cosine_accuracy@3", "acc@3"),
    ("cosine_accuracy@5", "acc@5"),
    ("cosine_accuracy@10", "acc@10"),
    ("cosine_ndcg@10", "ndcg@10"),
    ("cosine_mrr@10", "mrr@10"),
    ("cosine_map@100", "map@100"),
];

/// `dim → metric → value` as a Markdown table like the model card's (dims largest first).
pub fn card_table(values: &BTreeMap<u32, BTreeMap<String, f64>>) -> String {
    let mut s = String::from("| dim |");
    for (_, short) in CARD_METRICS {
        let _ = write!(s, " {short} |");
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(CARD_METRICS.len()));
    s.push('\n');
    for (dim, m) in values.iter().rev() {
        let _ = write!(s, "| {dim} |");
        for (key, _) in CARD_METRICS {
            match m.get(key) {
                Some(v) => {
                    let _ = write!(s, " {v:.4} |");
                }
                None => s.push_str(" – |"),
            }
        }
        s.push('\n');
    }
    s
}

/// Another evaluation's numbers to draw beside ours (a model card's table): `dim → metric → value`,
/// metrics by the evaluator's names (`cosine_ndcg@10`; `ndcg@10` is read as that).
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceCard {
    pub name: String,
    pub values: BTreeMap<u32, BTreeMap<String, f64>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReferenceFile {
    #[serde(default = "card_name")]
    name: String,
    dims: BTreeMap<String, BTreeMap<String, f64>>,
}

fn card_name() -> String {
    "model card".into()
}

impl ReferenceCard {
    /// `{"name": "model card", "dims": {"1024": {"ndcg@10": 0.7276, …}, "64": {…}}}`; a bad dim or
    /// metric name is an error naming it.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let file: ReferenceFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut values = BTreeMap::new();
        for (dim, metrics) in file.dims {
            let d: u32 = dim
                .parse()
                .map_err(|_| format!("dims.{dim}: not a dim (a positive integer)"))?;
            let mut named = BTreeMap::new();
            for (m, v) in metrics {
                let metric: crate::key::Metric =
                    m.parse().map_err(|e| format!("dims.{dim}.{m}: {e}"))?;
                named.insert(metric.to_string(), v);
            }
            values.insert(d, named);
        }
        Ok(Self {
            name: file.name,
            values,
        })
    }
}

/// The card's numbers beside the latest run's at the dims both have.
fn reference_table(by_dim: &BTreeMap<u32, BTreeMap<String, f64>>, card: &ReferenceCard) -> String {
    let mut s = format!(
        "| dim | metric | lexembed | {} | difference |\n|---|---|---|---|---|\n",
        card.name
    );
    for (dim, theirs) in card.values.iter().rev() {
        for (key, short) in CARD_METRICS {
            let (Some(t), Some(o)) = (theirs.get(key), by_dim.get(dim).and_then(|m| m.get(key)))
            else {
                continue;
            };
            let _ = writeln!(s, "| {dim} | {short} | {o:.4} | {t:.4} | {:+.4} |", o - t);
        }
    }
    s
}

/// The files of a report: name → content.
pub fn render(history: &[HistoryRow]) -> Vec<(String, String)> {
    render_with(history, None)
}

/// `render`, with another evaluation's numbers drawn beside ours (dashed) and tabled.
pub fn render_with(
    history: &[HistoryRow],
    reference: Option<&ReferenceCard>,
) -> Vec<(String, String)> {
    // The card is exact scoring's (the evaluator's); other paths get their own table below.
    let exact_runs = history.iter().filter(|r| r.metric.starts_with("cosine_"));
    let latest_exact = exact_runs.map(|r| r.run_time_us).max();
    let Some(last) = latest_exact.or(history.iter().map(|r| r.run_time_us).max()) else {
        return vec![(
            "report.md".into(),
            "# lexembed evaluation\n\nNo runs in the history yet.\n".into(),
        )];
    };
    let latest: Vec<&HistoryRow> = history.iter().filter(|r| r.run_time_us == last).collect();
    let mut by_dim: BTreeMap<u32, BTreeMap<String, f64>> = BTreeMap::new();
    for r in &latest {
        by_dim
            .entry(r.dim)
            .or_default()
            .insert(r.metric.clone(), r.value);
    }
    let head = latest[0];
    let mut files = Vec::new();
    let curve = matryoshka_curve(&by_dim, reference);
    files.push(("matryoshka.svg".to_string(), curve.clone()));
    let mut trend_names = Vec::new();
    for (key, short) in [CARD_METRICS[4], CARD_METRICS[0], CARD_METRICS[6]] {
        let svg = over_time(history, key, short);
        let name = format!("trend_{}.svg", short.replace('@', "_at_"));
        trend_names.push((name.clone(), short));
        files.push((name, svg));
    }
    let mut md = format!(
        "# lexembed evaluation\n\nLatest run: {} — model `{}`, dataset `{}` (version {}), QA set `{}`, {} runs in the history.\n\n",
        format_time(last),
        head.model_id,
        head.dataset_uri,
        head.dataset_version,
        &head.qa_digest[..head.qa_digest.len().min(12)],
        history
            .iter()
            .map(|r| r.run_time_us)
            .collect::<BTreeSet<_>>()
            .len()
    );
    md.push_str(&card_table(&by_dim));
    if let Some(card) = reference {
        let _ = write!(md, "\n## Against the {}\n\n", card.name);
        md.push_str(&reference_table(&by_dim, card));
    }
    let paths = search_paths(history, head);
    if let Some(table) = paths_table(&paths) {
        md.push_str("\n## Search paths\n\nThe latest run through each path on this dataset and model: exact scoring (the evaluator's), the vector index, full-text and hybrid search.\n\n");
        md.push_str(&table);
    }
    md.push_str(
        "\n## Matryoshka curve\n\n![metrics against dim](matryoshka.svg)\n\n## Over time\n\n",
    );
    for (name, short) in &trend_names {
        let _ = writeln!(md, "![{short} over time per dim]({name})\n");
    }
    let mut html = String::from(
        "<!doctype html><meta charset=utf-8><title>lexembed evaluation</title><body style=\"font-family:sans-serif\">",
    );
    let _ = write!(
        html,
        "<h1>lexembed evaluation</h1><p>Latest run {} — model <code>{}</code>, dataset <code>{}</code> v{}</p>",
        format_time(last),
        head.model_id,
        head.dataset_uri,
        head.dataset_version
    );
    html.push_str("<table border=1 cellpadding=4><tr><th>dim</th>");
    for (_, short) in CARD_METRICS {
        let _ = write!(html, "<th>{short}</th>");
    }
    html.push_str("</tr>");
    for (dim, m) in by_dim.iter().rev() {
        let _ = write!(html, "<tr><td>{dim}</td>");
        for (key, _) in CARD_METRICS {
            let _ = write!(
                html,
                "<td>{}</td>",
                m.get(key).map_or("–".into(), |v| format!("{v:.4}"))
            );
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    if let Some(card) = reference {
        let _ = write!(
            html,
            "<h2>Against the {}</h2><pre>{}</pre>",
            escape(&card.name),
            reference_table(&by_dim, card)
        );
    }
    if let Some(table) = paths_table(&paths) {
        let _ = write!(html, "<h2>Search paths</h2><pre>{table}</pre>");
    }
    html.push_str("<h2>Matryoshka curve</h2>");
    html.push_str(&curve);
    html.push_str("<h2>Over time</h2>");
    for (name, _) in &trend_names {
        if let Some((_, svg)) = files.iter().find(|(n, _)| n == name) {
            html.push_str(svg);
        }
    }
    html.push_str("</body>");
    files.push(("report.md".into(), md));
    files.push(("report.html".into(), html));
    files
}

/// Per search path (its metric prefix), the latest run's values on `head`'s dataset, model and QA set:
/// `prefix → dim → metric without prefix → value`.
fn search_paths(
    history: &[HistoryRow],
    head: &HistoryRow,
) -> BTreeMap<String, BTreeMap<u32, BTreeMap<String, f64>>> {
    let same = |r: &&HistoryRow| {
        r.dataset_uri == head.dataset_uri
            && r.model_id == head.model_id
            && r.qa_digest == head.qa_digest
    };
    let mut latest: BTreeMap<String, i64> = BTreeMap::new();
    for r in history.iter().filter(same) {
        let Some((prefix, _)) = r.metric.split_once('_') else {
            continue;
        };
        let t = latest.entry(prefix.to_string()).or_insert(r.run_time_us);
        *t = (*t).max(r.run_time_us);
    }
    let mut out: BTreeMap<String, BTreeMap<u32, BTreeMap<String, f64>>> = BTreeMap::new();
    for r in history.iter().filter(same) {
        let Some((prefix, name)) = r.metric.split_once('_') else {
            continue;
        };
        if latest.get(prefix) == Some(&r.run_time_us) {
            out.entry(prefix.to_string())
                .or_default()
                .entry(r.dim)
                .or_default()
                .insert(name.to_string(), r.value);
        }
    }
    out
}

/// The paths side by side, per dim: ndcg@10 and mrr@10 of each, and the index's k-NN recall@10;
/// `None` when the history holds one path only.
fn paths_table(paths: &BTreeMap<String, BTreeMap<u32, BTreeMap<String, f64>>>) -> Option<String> {
    if paths.len() < 2 {
        return None;
    }
    let order = ["cosine", "index", "fts", "hybrid"];
    let present: Vec<&str> = order
        .into_iter()
        .filter(|p| paths.contains_key(*p))
        .collect();
    fn label(p: &str) -> &str {
        if p == "cosine" { "exact" } else { p }
    }
    let mut s = String::from("| dim |");
    for p in &present {
        let _ = write!(s, " {0} ndcg@10 | {0} mrr@10 |", label(p));
    }
    let knn = paths.contains_key("index");
    if knn {
        s.push_str(" index knn_recall@10 |");
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(present.len() * 2 + usize::from(knn)));
    s.push('\n');
    let dims: BTreeSet<u32> = paths.values().flat_map(|d| d.keys().copied()).collect();
    let cell = |p: &str, dim: u32, m: &str| {
        paths
            .get(p)
            .and_then(|d| d.get(&dim))
            .and_then(|v| v.get(m))
            .map_or("–".to_string(), |v| format!("{v:.4}"))
    };
    for dim in dims.iter().rev() {
        let _ = write!(s, "| {dim} |");
        for p in &present {
            let _ = write!(
                s,
                " {} | {} |",
                cell(p, *dim, "ndcg@10"),
                cell(p, *dim, "mrr@10")
            );
        }
        if knn {
            let _ = write!(s, " {} |", cell("index", *dim, "knn_recall@10"));
        }
        s.push('\n');
    }
    Some(s)
}

fn format_time(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub(crate) fn civil(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

const PALETTE: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];
const W: f64 = 640.0;
const H: f64 = 360.0;
const PAD: f64 = 48.0;

/// Where a chart's points sit along x.
enum XAxis {
    /// Evenly spread, labelled (runs over time).
    Categories(Vec<String>),
    /// Matryoshka dims on a log2 scale (64, 128, 256 … equally spaced, as each halves the last).
    Log2Dims(Vec<u32>),
}

impl XAxis {
    fn len(&self) -> usize {
        match self {
            Self::Categories(l) => l.len(),
            Self::Log2Dims(d) => d.len(),
        }
    }

    fn label(&self, i: usize) -> String {
        match self {
            Self::Categories(l) => l[i].clone(),
            Self::Log2Dims(d) => d[i].to_string(),
        }
    }

    /// Position of point `i` in [0, 1].
    fn position(&self, i: usize) -> f64 {
        match self {
            Self::Categories(l) => i as f64 / (l.len().max(2) - 1) as f64,
            Self::Log2Dims(d) => {
                let log = |v: u32| f64::from(v.max(1)).log2();
                let (lo, hi) = (log(d[0]), log(d[d.len() - 1]));
                if hi > lo {
                    (log(d[i]) - lo) / (hi - lo)
                } else {
                    0.5
                }
            }
        }
    }
}

/// One line: its legend label, values per x point, and whether it is a reference (dashed).
struct Series {
    label: String,
    values: Vec<Option<f64>>,
    dashed: bool,
}

impl Series {
    fn ours(label: String, values: Vec<Option<f64>>) -> Self {
        Self {
            label,
            values,
            dashed: false,
        }
    }
}

/// Width of a legend label at the charts' font size (11 px sans-serif: at most 7 px a character).
fn text_width(s: &str) -> f64 {
    7.0 * s.chars().count() as f64
}

/// A line chart with its legend in a column of its own on the right, as wide as the longest label,
/// so no label is cut at the edge.
fn line_chart(title: &str, x_axis: &XAxis, series: &[Series]) -> String {
    let values: Vec<f64> = series
        .iter()
        .flat_map(|s| s.values.iter().flatten().copied())
        .collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let (lo, hi) = if values.is_empty() {
        (0.0, 1.0)
    } else if (hi - lo).abs() < 1e-9 {
        (lo - 0.05, hi + 0.05)
    } else {
        (lo - (hi - lo) * 0.1, hi + (hi - lo) * 0.1)
    };
    let legend_w = series
        .iter()
        .map(|s| text_width(&s.label) + 28.0)
        .fold(0.0, f64::max);
    let plot_right = W - legend_w - 8.0;
    let x = |i: usize| PAD + (plot_right - PAD) * x_axis.position(i);
    let y = |v: f64| H - PAD - (H - 2.0 * PAD) * (v - lo) / (hi - lo);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let _ = write!(
        s,
        "<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/><text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">{}</text>",
        W / 2.0,
        escape(title)
    );
    let _ = write!(
        s,
        "<line x1=\"{PAD}\" y1=\"{}\" x2=\"{plot_right}\" y2=\"{}\" stroke=\"black\"/><line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{}\" stroke=\"black\"/>",
        H - PAD,
        H - PAD,
        H - PAD
    );
    for t in 0..=4 {
        let v = lo + (hi - lo) * f64::from(t) / 4.0;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{v:.3}</text>",
            PAD - 4.0,
            y(v) + 4.0
        );
    }
    for i in 0..x_axis.len() {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x(i),
            H - PAD + 16.0,
            escape(&x_axis.label(i))
        );
    }
    if matches!(x_axis, XAxis::Log2Dims(_)) {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">dim (log2 scale)</text>",
            (PAD + plot_right) / 2.0,
            H - PAD + 32.0
        );
    }
    for (si, line) in series.iter().enumerate() {
        let color = PALETTE[si % PALETTE.len()];
        let dash = if line.dashed {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        let pts: Vec<(f64, f64)> = line
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (x(i), y(v))))
            .collect();
        let joined: Vec<String> = pts.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dash} points=\"{}\"/>",
            joined.join(" ")
        );
        for (px, py) in &pts {
            let _ = write!(
                s,
                "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"3\" fill=\"{color}\"/>"
            );
        }
        let ly = PAD + 16.0 * si as f64;
        let lx = plot_right + 12.0;
        let _ = write!(
            s,
            "<line x1=\"{lx}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{color}\" stroke-width=\"2\"{dash}/><text class=\"legend\" x=\"{}\" y=\"{ly}\" fill=\"{color}\">{}</text>",
            ly - 4.0,
            lx + 16.0,
            ly - 4.0,
            lx + 20.0,
            escape(&line.label)
        );
    }
    s.push_str("</svg>");
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn matryoshka_curve(
    by_dim: &BTreeMap<u32, BTreeMap<String, f64>>,
    reference: Option<&ReferenceCard>,
) -> String {
    let mut dims: BTreeSet<u32> = by_dim.keys().copied().collect();
    if let Some(card) = reference {
        dims.extend(card.values.keys().copied());
    }
    let dims: Vec<u32> = dims.into_iter().collect();
    let mut series: Vec<Series> = CARD_METRICS
        .iter()
        .filter(|(key, _)| by_dim.values().any(|m| m.contains_key(*key)))
        .map(|(key, short)| {
            let values = dims
                .iter()
                .map(|d| by_dim.get(d).and_then(|m| m.get(*key)).copied())
                .collect();
            Series::ours(short.to_string(), values)
        })
        .collect();
    if let Some(card) = reference {
        for (key, short) in CARD_METRICS {
            let values: Vec<Option<f64>> = dims
                .iter()
                .map(|d| card.values.get(d).and_then(|m| m.get(key)).copied())
                .collect();
            if values.iter().any(Option::is_some) {
                series.push(Series {
                    label: format!("{short} ({})", card.name),
                    values,
                    dashed: true,
                });
            }
        }
    }
    line_chart(
        "Matryoshka curve: metrics against dim (latest run)",
        &XAxis::Log2Dims(dims),
        &series,
    )
}

fn over_time(history: &[HistoryRow], metric: &str, short: &str) -> String {
    let runs: Vec<i64> = history
        .iter()
        .map(|r| r.run_time_us)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let dims: BTreeSet<u32> = history.iter().map(|r| r.dim).collect();
    let labels: Vec<String> = runs
        .iter()
        .map(|&t| format_time(t)[5..16].to_string())
        .collect();
    let series: Vec<Series> = dims
        .iter()
        .rev()
        .map(|&d| {
            let vals = runs
                .iter()
                .map(|&t| {
                    history
                        .iter()
                        .find(|r| r.run_time_us == t && r.dim == d && r.metric == metric)
                        .map(|r| r.value)
                })
                .collect();
            Series::ours(format!("dim {d}"), vals)
        })
        .collect();
    line_chart(
        &format!("{short} over time"),
        &XAxis::Categories(labels),
        &series,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t: i64, dim: u32, metric: &str, value: f64) -> HistoryRow {
        HistoryRow {
            run_time_us: t,
            model_id: "m".into(),
            dataset_uri: "d".into(),
            dataset_version: 1,
            qa_digest: "abc".into(),
            dim,
            metric: metric.into(),
            value,
        }
    }

    #[test]
    fn report_has_the_card_table_and_charts() {
        let h = vec![
            row(0, 64, "cosine_ndcg@10", 0.6),
            row(0, 128, "cosine_ndcg@10", 0.7),
            row(86_400_000_000, 64, "cosine_ndcg@10", 0.65),
            row(86_400_000_000, 128, "cosine_ndcg@10", 0.72),
        ];
        let files = render(&h);
        let md = &files.iter().find(|(n, _)| n == "report.md").unwrap().1;
        assert!(md.contains("| 128 | – | – | – | – | 0.7200 |"), "{md}");
        assert!(md.contains("1970-01-02 00:00:00 UTC"));
        let trend = &files
            .iter()
            .find(|(n, _)| n == "trend_ndcg_at_10.svg")
            .unwrap()
            .1;
        assert_eq!(trend.matches("<polyline").count(), 2, "one line per dim");
        assert!(
            files
                .iter()
                .any(|(n, s)| n == "matryoshka.svg" && s.starts_with("<svg"))
        );
    }

    /// Runs through other search paths do not displace the card (exact scoring's latest run); they are
    /// shown side by side per dim.
    #[test]
    fn search_paths_are_tabled_side_by_side() {
        let h = vec![
            row(1, 64, "cosine_ndcg@10", 0.6),
            row(1, 64, "cosine_mrr@10", 0.5),
            row(2, 64, "index_ndcg@10", 0.58),
            row(2, 64, "index_knn_recall@10", 0.97),
            row(3, 64, "hybrid_ndcg@10", 0.66),
        ];
        let files = render(&h);
        let md = &files.iter().find(|(n, _)| n == "report.md").unwrap().1;
        assert!(
            md.contains("| 64 | – | – | – | – | 0.6000 | 0.5000 |"),
            "{md}"
        );
        assert!(md.contains("| dim | exact ndcg@10 | exact mrr@10 | index ndcg@10 | index mrr@10 | hybrid ndcg@10 | hybrid mrr@10 | index knn_recall@10 |"), "{md}");
        assert!(
            md.contains("| 64 | 0.6000 | 0.5000 | 0.5800 | – | 0.6600 | – | 0.9700 |"),
            "{md}"
        );
    }

    /// The card's numbers are drawn dashed on the dims' log2 axis and tabled against ours; a bad
    /// metric or dim in the card file is named.
    #[test]
    fn a_reference_card_is_drawn_and_tabled_beside_the_run() {
        let card = ReferenceCard::from_json(
            r#"{"name": "bge-m3 card", "dims": {"1024": {"ndcg@10": 0.7276}, "64": {"cosine_ndcg@10": 0.6562}}}"#,
        )
        .unwrap();
        assert_eq!(card.values[&64]["cosine_ndcg@10"], 0.6562);
        let h = vec![
            row(1, 64, "cosine_ndcg@10", 0.6),
            row(1, 256, "cosine_ndcg@10", 0.7),
        ];
        let files = render_with(&h, Some(&card));
        let md = &files.iter().find(|(n, _)| n == "report.md").unwrap().1;
        assert!(
            md.contains("| 64 | ndcg@10 | 0.6000 | 0.6562 | -0.0562 |"),
            "{md}"
        );
        let curve = &files.iter().find(|(n, _)| n == "matryoshka.svg").unwrap().1;
        assert!(curve.contains("stroke-dasharray") && curve.contains("ndcg@10 (bge-m3 card)"));
        assert!(curve.contains("dim (log2 scale)"));
        // 64, 256, 1024 on a log2 axis: 256 sits halfway.
        assert!(XAxis::Log2Dims(vec![64, 256, 1024]).position(1) == 0.5);
        for bad in [
            r#"{"dims": {"x": {}}}"#,
            r#"{"dims": {"64": {"ndgc@10": 1}}}"#,
            r#"{"dim": {}}"#,
        ] {
            assert!(ReferenceCard::from_json(bad).is_err(), "{bad}");
        }
        let e = ReferenceCard::from_json(r#"{"dims": {"64": {"ndgc@10": 1}}}"#).unwrap_err();
        assert!(e.contains("dims.64.ndgc@10"), "{e}");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(20_000), (2024, 10, 4));
    }
}
