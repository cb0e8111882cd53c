//! The report writer: every chart kind produces well-formed XML (checked by a small tag-balance
//! and entity checker below, to keep the dependency tree lean), names every series, escapes
//! markup in text, is byte-for-byte deterministic and survives NaN, ±∞ and empty series; a
//! report with a table and two figures is written atomically and contains them.
//!
//! Set `LAMBDA_DPO_REPORT_EXAMPLES=/some/dir` to also write the example charts and page there
//! for a look in a browser or image viewer.

use std::path::Path;

use lambda_dpo::report::{BarChart, Connect, LineChart, Report, ScatterChart};

/// Minimal well-formedness check: one root element, every start tag closed in order, quoted
/// attributes, no `<` in text or attribute values, and every `&` starting a known entity.
fn check_xml(doc: &str) -> Result<(), String> {
    let mut stack: Vec<String> = Vec::new();
    let mut roots = 0;
    let mut rest = doc;
    while let Some(open) = rest.find('<') {
        check_text(&rest[..open])?;
        if stack.is_empty() && !rest[..open].trim().is_empty() {
            return Err(format!("text outside the root: {:?}", &rest[..open]));
        }
        rest = &rest[open..];
        let close = rest.find('>').ok_or("unterminated tag")?;
        let tag = &rest[1..close];
        rest = &rest[close + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(top) if top == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            continue;
        }
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        let self_closing = tag.ends_with('/');
        let body = tag.trim_end_matches('/');
        let name_end = body.find(char::is_whitespace).unwrap_or(body.len());
        let name = &body[..name_end];
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == ':')
        {
            return Err(format!("bad tag name in <{tag}>"));
        }
        check_attributes(&body[name_end..])?;
        if stack.is_empty() {
            roots += 1;
        }
        if !self_closing {
            stack.push(name.to_string());
        }
    }
    check_text(rest)?;
    if !rest.trim().is_empty() {
        return Err(format!("text after the root: {rest:?}"));
    }
    match (stack.is_empty(), roots) {
        (true, 1) => Ok(()),
        (false, _) => Err(format!("unclosed elements {stack:?}")),
        (_, n) => Err(format!("{n} root elements")),
    }
}

fn check_attributes(mut s: &str) -> Result<(), String> {
    loop {
        s = s.trim_start();
        if s.is_empty() {
            return Ok(());
        }
        let eq = s
            .find('=')
            .ok_or(format!("attribute without value: {s:?}"))?;
        let name = s[..eq].trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("bad attribute name {name:?}"));
        }
        let value = s[eq + 1..]
            .strip_prefix('"')
            .ok_or(format!("unquoted attribute {name}"))?;
        let end = value.find('"').ok_or("unterminated attribute value")?;
        check_text(&value[..end])?;
        s = &value[end + 1..];
    }
}

fn check_text(text: &str) -> Result<(), String> {
    if text.contains('<') {
        return Err(format!("raw '<' in {text:?}"));
    }
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        rest = &rest[amp + 1..];
        let semi = rest.find(';').ok_or(format!("bare '&' in {text:?}"))?;
        let entity = &rest[..semi];
        let known = ["amp", "lt", "gt", "quot", "apos"].contains(&entity)
            || entity
                .strip_prefix('#')
                .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()));
        if !known {
            return Err(format!("unknown entity &{entity};"));
        }
    }
    Ok(())
}

#[test]
fn the_checker_rejects_what_it_should() {
    assert!(check_xml("<svg><g/></svg>").is_ok());
    assert!(check_xml("<svg><g></svg>").is_err());
    assert!(check_xml("<svg>a & b</svg>").is_err());
    assert!(check_xml("<svg x=1/>").is_err());
    assert!(check_xml("<a/><b/>").is_err());
}

const METHODS: [&str; 3] = [
    "DPO (best vs worst)",
    "λ-DPO",
    "λ-DPO + prompt conditioning",
];

fn line_chart() -> LineChart {
    let grid: Vec<f64> = (0..=10).map(|i| f64::from(i) / 10.0).collect();
    let mut chart = LineChart::new("Mean helpfulness reward vs λ₁")
        .x_label("λ₁ (weight of helpfulness)")
        .y_label("mean true reward")
        .x_range(0.0, 1.0);
    for (m, name) in METHODS.iter().enumerate() {
        let slope = [0.02, 0.25, 0.6][m];
        chart = chart.series(
            *name,
            grid.iter()
                .map(|&l| (l, 0.3 + slope * l + 0.03 * (7.0 * l + m as f64).sin())),
        );
    }
    chart
}

fn scatter_chart() -> ScatterChart {
    let mut chart = ScatterChart::new("Reward trade-off over the λ grid")
        .x_label("helpfulness reward")
        .y_label("harmlessness reward");
    for (m, name) in METHODS.iter().enumerate() {
        let spread = [0.05, 0.3, 0.55][m];
        let points: Vec<(f64, f64)> = (0..=10)
            .map(|i| {
                let l = f64::from(i) / 10.0;
                (
                    0.4 + spread * l,
                    0.4 + spread * (1.0 - l) - 0.2 * spread * l * (1.0 - l),
                )
            })
            .collect();
        chart = chart.series_with(*name, points, Connect::Step);
    }
    chart.series("reference (SFT)", [(0.42, 0.41)])
}

fn bar_chart() -> BarChart {
    BarChart::new("Dominated hypervolume (reference = SFT)")
        .y_label("hypervolume")
        .categories(["helpful × harmless", "helpful × honest", "all three"])
        .series(METHODS[0], [0.0123, 0.0101, 0.0012])
        .series(METHODS[1], [0.0612, 0.0533, 0.0114])
        .series(METHODS[2], [0.1421, 0.1307, 0.0391])
}

#[test]
fn charts_are_well_formed_and_name_every_series() {
    let svgs = [
        line_chart().to_svg(),
        scatter_chart().to_svg(),
        bar_chart().to_svg(),
    ];
    for svg in &svgs {
        check_xml(svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(
            !svg.contains(" id="),
            "ids collide when charts share a page"
        );
        for name in METHODS {
            assert!(svg.contains(name), "{name} missing");
        }
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }
    assert!(svgs[1].contains("reference (SFT)"));
    // Value labels are compact.
    assert!(svgs[2].contains(">0.142<") && svgs[2].contains(">0.0012<"));
}

#[test]
fn text_is_escaped() {
    let title = "a <b> & \"c\" 'd'";
    let svgs = [
        LineChart::new(title)
            .x_label("x<1")
            .series("s&t", [(0.0, 1.0), (1.0, 2.0)])
            .to_svg(),
        ScatterChart::new(title)
            .y_label("y>0")
            .series("<s>", [(0.0, 1.0)])
            .to_svg(),
        BarChart::new(title)
            .categories(["<c>"])
            .series("s&t", [1.0])
            .to_svg(),
    ];
    for svg in &svgs {
        check_xml(svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert!(svg.contains("a &lt;b&gt; &amp; &quot;c&quot; &#39;d&#39;"));
        assert!(!svg.contains("<b>"));
    }
    assert!(svgs[0].contains("s&amp;t") && svgs[0].contains("x&lt;1"));
    assert!(svgs[1].contains("&lt;s&gt;") && svgs[1].contains("y&gt;0"));
    assert!(svgs[2].contains("&lt;c&gt;"));
}

#[test]
fn output_is_deterministic() {
    assert_eq!(line_chart().to_svg(), line_chart().to_svg());
    assert_eq!(scatter_chart().to_svg(), scatter_chart().to_svg());
    assert_eq!(bar_chart().to_svg(), bar_chart().to_svg());
    let page = || {
        Report::new("r")
            .figure(line_chart().to_svg(), "c")
            .to_html()
    };
    assert_eq!(page(), page());
}

#[test]
fn bad_values_are_skipped_without_panic() {
    let (nan, inf) = (f64::NAN, f64::INFINITY);
    let line = LineChart::new("gaps")
        .series(
            "with gaps",
            [(0.0, 1.0), (0.5, nan), (1.0, 2.0), (inf, 3.0)],
        )
        .series("empty", [])
        .series("all bad", [(nan, 1.0), (1.0, -inf)])
        .to_svg();
    let scatter = ScatterChart::new("gaps")
        .series_with("front", [(0.0, 1.0), (nan, nan), (1.0, 0.0)], Connect::Step)
        .series_with("path", [(0.0, 1.0), (nan, 0.5), (1.0, 0.0)], Connect::Line)
        .series("empty", [])
        .to_svg();
    let bars = BarChart::new("gaps")
        .categories(["a", "b", "c"])
        .series("short", [1.0])
        .series("nan", [nan, 2.0, -1.0, 9.0])
        .series("empty", [])
        .to_svg();
    for svg in [&line, &scatter, &bars] {
        check_xml(svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        assert!(svg.contains("empty (no data)"));
    }
    assert!(line.contains("all bad (no data)"));
    // The NaN breaks the line into two sub-paths.
    assert!(line.matches('M').count() >= 2);
    assert!(bars.contains(">n/a<"));
    // Nothing at all to draw: axes and a note, not a panic.
    for svg in [
        LineChart::new("nothing").to_svg(),
        ScatterChart::new("nothing")
            .series("x", [(nan, nan)])
            .to_svg(),
        BarChart::new("nothing").to_svg(),
        BarChart::new("nothing").categories(["a"]).to_svg(),
    ] {
        check_xml(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert!(svg.contains(">no data<"));
    }
}

#[test]
fn a_report_with_a_table_and_two_figures_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.html");
    std::fs::write(&path, "old").unwrap();
    let (line, scatter) = (line_chart().to_svg(), scatter_chart().to_svg());
    let report = Report::new("λ-DPO demo <results>")
        .paragraph("Three methods & one budget.")
        .heading("Hypervolume")
        .table(
            "Dominated hypervolume",
            ["method", "HV", "Spearman ρ"],
            [
                vec!["DPO".to_string(), "0.0123".into(), "n/a".into()],
                vec!["λ-DPO <paper>".to_string(), "0.0612".into()],
            ],
        )
        .figure(line.clone(), "Reward vs λ")
        .figure(
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{scatter}"),
            "Trade-off",
        )
        .preformatted("lambda-dpo train --config runs/dpo.toml");
    report.write(&path).unwrap();
    let html = std::fs::read_to_string(&path).unwrap();
    assert_eq!(html, report.to_html());
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<title>λ-DPO demo &lt;results&gt;</title>"));
    assert!(html.contains("Three methods &amp; one budget."));
    assert!(html.contains("<th>Spearman ρ</th>"));
    assert!(html.contains("<td class=\"num\">0.0612</td>"));
    assert!(html.contains("<td>λ-DPO &lt;paper&gt;</td><td class=\"num\">0.0612</td><td></td>"));
    assert!(html.contains(line.trim_end()) && html.contains(scatter.trim_end()));
    assert!(
        !html.contains("<?xml"),
        "the prolog is not valid inside HTML"
    );
    assert!(html.contains("<figcaption>Reward vs λ</figcaption>"));
    assert!(html.contains("<figcaption>Trade-off</figcaption>"));
    assert!(no_fetches(&html), "the page must be self-contained");
    // Every figure's SVG is still well-formed where it sits in the page.
    for part in html.split("<figure>\n").skip(1) {
        let svg = &part[..part.find("</svg>").unwrap() + "</svg>".len()];
        check_xml(svg).unwrap();
    }
    // Only the report is left in the folder: the temporary file was renamed.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("report.html")]);
}

/// The only URL in a page may be the SVG namespace, which is a name, not a fetch.
fn no_fetches(html: &str) -> bool {
    !html.contains("<script")
        && html
            .replace("http://www.w3.org/2000/svg", "")
            .find("http")
            .is_none()
}

#[test]
fn writing_into_a_missing_folder_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("report.html");
    let err = Report::new("r").write(&path).unwrap_err();
    assert!(err.to_string().contains("report.html"), "{err}");
}

#[test]
fn example_charts() {
    // Beyond the demo's shapes: many series, long and rotated names, negative bars, a
    // one-point line and large numbers — none may panic or break the XML.
    let mut stress = BarChart::new("Stress: eight series, negative values").categories([
        "a rather long category name",
        "another long category name",
        "short",
        "x",
    ]);
    let mut many = LineChart::new("Stress: large values").x_label("step");
    for s in 0..8 {
        let k = f64::from(s);
        stress = stress.series(
            format!("series {s}"),
            [k - 3.5, 0.01 * k, -120.0 + k, 1234.5 * k],
        );
        many = many.series(
            format!("run {s}"),
            (0..5).map(|i| (f64::from(i) * 1e5, 1e6 + k * 2e5 * f64::from(i))),
        );
    }
    let many = many.series("one point", [(2e5, 3e6)]);
    let charts = [
        ("line.svg", line_chart().to_svg()),
        ("scatter.svg", scatter_chart().to_svg()),
        ("bars.svg", bar_chart().to_svg()),
        ("stress-bars.svg", stress.to_svg()),
        ("stress-line.svg", many.to_svg()),
    ];
    for (name, svg) in &charts {
        check_xml(svg).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let Some(dir) = std::env::var_os("LAMBDA_DPO_REPORT_EXAMPLES") else {
        return;
    };
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();
    let mut report = Report::new("Report example");
    for (name, svg) in &charts {
        std::fs::write(dir.join(name), svg).unwrap();
        report = report.figure(svg.clone(), *name);
    }
    report.write(&dir.join("report.html")).unwrap();
}
