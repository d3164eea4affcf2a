//! report.csv and a self-contained report.html (inline SVG, no scripts, no external
//! resources). Chart geometry is computed from the decimals in integer pixels: no float.

use std::fmt::Write;

use rust_decimal::Decimal;

use crate::cur::Category;
use crate::report::Report;

/// report.csv: one line per fact, `section,region,service,category,from_region,to_region,cost`.
pub fn csv(report: &Report) -> String {
    let mut out = String::from("section,region,service,category,from_region,to_region,cost\n");
    let q = |s: &str| -> String {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    let _ = writeln!(out, "total,,,,,,{}", report.total);
    for r in &report.regions {
        for (cat, cost) in &r.by_category {
            let _ = writeln!(out, "region,{},,{},,,{cost}", q(&r.region), cat.as_str());
        }
    }
    for c in &report.cells {
        let _ = writeln!(
            out,
            "cell,{},{},{},,,{}",
            q(&c.region),
            q(&c.service),
            c.category.as_str(),
            c.cost
        );
    }
    for t in &report.transfers {
        let _ = writeln!(
            out,
            "transfer,,,network,{},{},{}",
            q(&t.from_region),
            q(&t.to_region),
            t.cost
        );
    }
    for d in &report.drills {
        let _ = writeln!(out, "drill,,{},,,,{}", q(&d.id), d.cost);
    }
    if let Some(r) = &report.resilience {
        let _ = writeln!(out, "premium,,,,,,{}", r.monthly_premium);
        let _ = writeln!(
            out,
            "downtime_cost_avoided,,,,,,{}",
            r.downtime_cost_avoided
        );
        let _ = writeln!(out, "roi,,,,,,{}", r.roi);
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `value / max × span`, rounded, in pixels (0 when `max` is 0).
fn px(value: Decimal, max: Decimal, span: i64) -> i64 {
    if max <= Decimal::ZERO || value <= Decimal::ZERO {
        return 0;
    }
    (value * Decimal::from(span) / max)
        .round()
        .try_into()
        .unwrap_or(0)
}

const COLORS: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#bab0ac",
];

fn color(c: Category) -> &'static str {
    let i = Category::ALL.iter().position(|x| *x == c).unwrap_or(5);
    COLORS.get(i).copied().unwrap_or("#999")
}

fn stacked_by_region(report: &Report) -> String {
    let (w, h, left, bar) = (640i64, 260i64, 60i64, 48i64);
    let max = report
        .regions
        .iter()
        .map(|r| r.total)
        .max()
        .unwrap_or_default();
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{}" role="img" aria-label="Cost per Region by category">"#,
        h + 60
    );
    for (i, r) in report.regions.iter().enumerate() {
        let x = left + i64::try_from(i).unwrap_or(0) * (bar + 24);
        let mut y = h;
        for cat in Category::ALL {
            let v = r.by_category.get(&cat).copied().unwrap_or_default();
            let hh = px(v, max, h - 20);
            if hh > 0 {
                y -= hh;
                let _ = write!(
                    s,
                    r#"<rect x="{x}" y="{y}" width="{bar}" height="{hh}" fill="{}"><title>{} {}: {v}</title></rect>"#,
                    color(cat),
                    esc(&r.region),
                    cat.as_str()
                );
            }
        }
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text><text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>"#,
            x + bar / 2,
            h + 14,
            esc(&r.region),
            x + bar / 2,
            (y - 4).max(10),
            r.total.round_dp(0)
        );
    }
    for (i, cat) in Category::ALL.iter().enumerate() {
        let x = left + i64::try_from(i).unwrap_or(0) * 90;
        let _ = write!(
            s,
            r#"<rect x="{x}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}" font-size="11">{}</text>"#,
            h + 30,
            color(*cat),
            x + 14,
            h + 39,
            cat.as_str()
        );
    }
    s.push_str("</svg>");
    s
}

fn month_over_month(report: &Report) -> String {
    let mut bars: Vec<(String, Decimal)> = Vec::new();
    if let Some(p) = &report.previous {
        bars.push((p.period.to_string(), p.total));
    }
    bars.push((report.period.to_string(), report.total));
    let (h, bar) = (160i64, 60i64);
    let max = bars.iter().map(|b| b.1).max().unwrap_or_default();
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="320" height="{}" role="img" aria-label="Month over month">"#,
        h + 30
    );
    for (i, (label, v)) in bars.iter().enumerate() {
        let x = 40 + i64::try_from(i).unwrap_or(0) * (bar + 40);
        let hh = px(*v, max, h - 20);
        let _ = write!(
            s,
            r##"<rect x="{x}" y="{}" width="{bar}" height="{hh}" fill="#4e79a7"><title>{label}: {v}</title></rect><text x="{}" y="{}" font-size="11" text-anchor="middle">{label}</text><text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>"##,
            h - hh,
            x + bar / 2,
            h + 14,
            x + bar / 2,
            (h - hh - 4).max(10),
            v.round_dp(2)
        );
    }
    s.push_str("</svg>");
    s
}

fn transfer_matrix(report: &Report) -> String {
    let mut names: Vec<&str> = report
        .transfers
        .iter()
        .flat_map(|t| [t.from_region.as_str(), t.to_region.as_str()])
        .collect();
    names.sort_unstable();
    names.dedup();
    let cell = 84i64;
    let left = 110i64;
    let n = i64::try_from(names.len()).unwrap_or(0);
    let max = report
        .transfers
        .iter()
        .map(|t| t.cost)
        .max()
        .unwrap_or_default();
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" role="img" aria-label="Inter-Region transfer, from rows to columns">"#,
        left + n * cell + 10,
        30 + n * cell + 10
    );
    for (j, to) in names.iter().enumerate() {
        let _ = write!(
            s,
            r#"<text x="{}" y="20" font-size="10" text-anchor="middle">{}</text>"#,
            left + i64::try_from(j).unwrap_or(0) * cell + cell / 2,
            esc(to)
        );
    }
    for (i, from) in names.iter().enumerate() {
        let y = 30 + i64::try_from(i).unwrap_or(0) * cell;
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" font-size="10" text-anchor="end">{}</text>"#,
            left - 6,
            y + cell / 2,
            esc(from)
        );
        for (j, to) in names.iter().enumerate() {
            let x = left + i64::try_from(j).unwrap_or(0) * cell;
            let v = report
                .transfers
                .iter()
                .find(|t| t.from_region == *from && t.to_region == *to)
                .map(|t| t.cost)
                .unwrap_or_default();
            let alpha = px(v, max, 89) + if v > Decimal::ZERO { 10 } else { 0 };
            let _ = write!(
                s,
                r##"<rect x="{x}" y="{y}" width="{}" height="{}" fill="rgb(225,87,89)" fill-opacity="0.{alpha:02}" stroke="#ddd"><title>{} → {}: {v}</title></rect><text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>"##,
                cell - 2,
                cell - 2,
                esc(from),
                esc(to),
                x + cell / 2,
                y + cell / 2,
                v.round_dp(2)
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// report.html: one file, inline CSS and SVG.
pub fn html(report: &Report) -> String {
    let title = format!(
        "Cost of resilience — {} — {}",
        report.workload.as_deref().unwrap_or("whole bill"),
        report.period
    );
    let mut s = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1000px}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th:first-child,td:first-child{{text-align:left}}</style></head><body><h1>{}</h1>",
        esc(&title),
        esc(&title)
    );
    let _ = write!(
        s,
        "<p>Total <b>{} {}</b> (unblended {}), {} rows of {} read from {} file(s); {} bad row(s) skipped; rest of the bill {}.</p>",
        report.total,
        esc(&report.currency),
        report.total_unblended,
        report.matched_rows,
        report.rows,
        report.files.len(),
        report.bad_rows,
        report.out_of_scope
    );
    s.push_str("<h2>Cost per Region by category</h2>");
    s.push_str(&stacked_by_region(report));
    s.push_str("<table><tr><th>Region</th><th>role</th>");
    for c in Category::ALL {
        let _ = write!(s, "<th>{}</th>", c.as_str());
    }
    s.push_str("<th>total</th></tr>");
    for r in &report.regions {
        let role = r
            .role
            .map(|x| format!("{x:?}").to_lowercase())
            .unwrap_or_default();
        let _ = write!(s, "<tr><td>{}</td><td>{role}</td>", esc(&r.region));
        for c in Category::ALL {
            let _ = write!(
                s,
                "<td>{}</td>",
                r.by_category.get(&c).copied().unwrap_or_default()
            );
        }
        let _ = write!(s, "<td><b>{}</b></td></tr>", r.total);
    }
    s.push_str("</table><h2>Month over month</h2>");
    s.push_str(&month_over_month(report));
    s.push_str("<h2>Inter-Region data transfer</h2>");
    s.push_str(&transfer_matrix(report));
    if let Some(r) = &report.resilience {
        let _ = write!(
            s,
            "<h2>Resilience</h2><table><tr><td>pattern</td><td>{:?}</td></tr><tr><td>monthly premium</td><td>{}</td></tr><tr><td>RTO used (h, {:?})</td><td>{}</td></tr><tr><td>expected downtime hours avoided / month</td><td>{}</td></tr><tr><td>downtime cost avoided</td><td>{}</td></tr><tr><td><b>ROI</b></td><td><b>{}</b></td></tr></table>",
            r.pattern,
            r.monthly_premium,
            r.rto_source,
            r.rto_hours,
            r.expected_downtime_hours_avoided,
            r.downtime_cost_avoided,
            r.roi
        );
    }
    if !report.drills.is_empty() {
        s.push_str("<h2>Drills</h2><table><tr><th>run</th><th>started</th><th>RTO ms</th><th>cost</th></tr>");
        for d in &report.drills {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&d.id),
                esc(&d.started_at),
                d.measured_rto_ms.map(|m| m.to_string()).unwrap_or_default(),
                d.cost
            );
        }
        s.push_str("</table>");
    }
    if !report.recommendations.is_empty() {
        s.push_str("<h2>Recommendations</h2><ul>");
        for r in &report.recommendations {
            let _ = write!(s, "<li><b>{}</b>: {}</li>", r.kind, esc(&r.detail));
        }
        s.push_str("</ul>");
    }
    s.push_str("</body></html>\n");
    s
}
