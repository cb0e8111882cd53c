//! One self-contained HTML page for the demo's results: a title, then headings, paragraphs,
//! preformatted text, tables and figures in the order they were added. Inline CSS only — no
//! scripts, fonts or images to fetch — so `report.html` opens the same from a laptop, a CI
//! artifact or an air-gapped machine, and prints cleanly.
//!
//! All text is HTML-escaped. A figure's SVG is the one exception: it is inlined verbatim, so it
//! must come from [`super::svg`] (or another trusted writer), never from user input.

use std::path::Path;

use super::svg::escape;

/// One block of the page body.
#[derive(Debug, Clone, PartialEq)]
enum Block {
    Heading(String),
    Paragraph(String),
    Preformatted(String),
    Table {
        caption: String,
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    Figure {
        svg: String,
        caption: String,
    },
}

/// A report page under construction; blocks appear in the order they are added.
///
/// ```text
/// Report::new("λ-DPO demo").paragraph("Three methods, one budget.")
///     .table("Hypervolume", ["method", "HV"], [vec!["DPO".into(), "0.21".into()]])
///     .figure(chart.to_svg(), "Mean reward per dimension vs λ")
///     .write(Path::new("out/report.html"))?;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    title: String,
    blocks: Vec<Block>,
}

/// Readable defaults, print-friendly; numbers right-aligned with tabular figures so columns of
/// rewards line up.
const CSS: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI','DejaVu Sans',Helvetica,Arial,sans-serif;\
max-width:980px;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.5}\
h1{font-size:1.6rem;margin-bottom:.5rem}h2{font-size:1.25rem;margin-top:2rem;\
border-bottom:1px solid #ddd;padding-bottom:.2rem}\
table{border-collapse:collapse;margin:1rem 0;font-size:.92rem}\
caption{caption-side:top;text-align:left;font-weight:600;padding-bottom:.3rem}\
th,td{border:1px solid #d4d4d4;padding:.3rem .6rem;text-align:left;vertical-align:top}\
th{background:#f3f3f3}tbody tr:nth-child(even){background:#fafafa}\
td.num{text-align:right;font-variant-numeric:tabular-nums}\
figure{margin:1.5rem 0}figure svg{max-width:100%;height:auto}\
figcaption{font-size:.9rem;color:#555;margin-top:.3rem}\
pre{background:#f6f6f6;padding:.6rem .8rem;overflow-x:auto;font-size:.85rem}";

impl Report {
    /// An empty report; `title` becomes both `<title>` and the top heading.
    pub fn new(title: impl Into<String>) -> Self {
        Report {
            title: title.into(),
            blocks: Vec::new(),
        }
    }

    /// A section heading (`<h2>`).
    pub fn heading(mut self, text: impl Into<String>) -> Self {
        self.blocks.push(Block::Heading(text.into()));
        self
    }

    /// A paragraph of plain text (escaped; line breaks are kept as spaces by HTML).
    pub fn paragraph(mut self, text: impl Into<String>) -> Self {
        self.blocks.push(Block::Paragraph(text.into()));
        self
    }

    /// Preformatted text in a monospace block, e.g. the command that repeats a run.
    pub fn preformatted(mut self, text: impl Into<String>) -> Self {
        self.blocks.push(Block::Preformatted(text.into()));
        self
    }

    /// A table with a caption (may be empty) and a header row. A row shorter than the header
    /// is padded with empty cells; a longer one keeps its extra cells. Cells that parse as a
    /// number are right-aligned.
    pub fn table<S: Into<String>>(
        mut self,
        caption: impl Into<String>,
        header: impl IntoIterator<Item = S>,
        rows: impl IntoIterator<Item = Vec<String>>,
    ) -> Self {
        self.blocks.push(Block::Table {
            caption: caption.into(),
            header: header.into_iter().map(Into::into).collect(),
            rows: rows.into_iter().collect(),
        });
        self
    }

    /// A figure: an SVG document (inlined verbatim — see the module docs) and a caption.
    pub fn figure(mut self, svg: impl Into<String>, caption: impl Into<String>) -> Self {
        self.blocks.push(Block::Figure {
            svg: svg.into(),
            caption: caption.into(),
        });
        self
    }

    /// The page as one HTML5 document.
    pub fn to_html(&self) -> String {
        let mut out = String::new();
        out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        out.push_str(&format!("<title>{}</title>\n", escape(&self.title)));
        out.push_str(&format!("<style>{CSS}</style>\n</head>\n<body>\n"));
        out.push_str(&format!("<h1>{}</h1>\n", escape(&self.title)));
        for block in &self.blocks {
            match block {
                Block::Heading(t) => out.push_str(&format!("<h2>{}</h2>\n", escape(t))),
                Block::Paragraph(t) => out.push_str(&format!("<p>{}</p>\n", escape(t))),
                Block::Preformatted(t) => out.push_str(&format!("<pre>{}</pre>\n", escape(t))),
                Block::Table {
                    caption,
                    header,
                    rows,
                } => table(&mut out, caption, header, rows),
                Block::Figure { svg, caption } => {
                    out.push_str("<figure>\n");
                    out.push_str(strip_xml_declaration(svg).trim_end());
                    out.push('\n');
                    if !caption.is_empty() {
                        out.push_str(&format!("<figcaption>{}</figcaption>\n", escape(caption)));
                    }
                    out.push_str("</figure>\n");
                }
            }
        }
        out.push_str("</body>\n</html>\n");
        out
    }

    /// Write the page to `path` atomically: into a temporary file in the same folder, flushed
    /// to disk, then renamed over `path`, so a reader (or a crash) never sees half a report.
    /// The folder must exist.
    ///
    /// # Errors
    /// The I/O error, with `path` in its message; the temporary file is removed.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        write_atomic(path, self.to_html().as_bytes())
    }
}

fn table(out: &mut String, caption: &str, header: &[String], rows: &[Vec<String>]) {
    out.push_str("<table>\n");
    if !caption.is_empty() {
        out.push_str(&format!("<caption>{}</caption>\n", escape(caption)));
    }
    if !header.is_empty() {
        out.push_str("<thead><tr>");
        for h in header {
            out.push_str(&format!("<th>{}</th>", escape(h)));
        }
        out.push_str("</tr></thead>\n");
    }
    out.push_str("<tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for i in 0..row.len().max(header.len()) {
            let cell = row.get(i).map_or("", String::as_str);
            if is_number(cell) {
                out.push_str(&format!("<td class=\"num\">{}</td>", escape(cell)));
            } else {
                out.push_str(&format!("<td>{}</td>", escape(cell)));
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

/// Whether a cell reads as a number ("0.41", "-3", "1.2e-5", "+0.02", "0.41 ± 0.03").
fn is_number(cell: &str) -> bool {
    let head = cell.split(" ± ").next().unwrap_or("").trim();
    !head.is_empty() && head.parse::<f64>().is_ok_and(f64::is_finite)
}

/// An `<?xml …?>` prolog is legal at the top of an `.svg` file but not inside HTML.
fn strip_xml_declaration(svg: &str) -> &str {
    let s = svg.trim_start();
    match s.strip_prefix("<?xml").and_then(|r| r.split_once("?>")) {
        Some((_, rest)) => rest.trim_start(),
        None => s,
    }
}

/// Writes `bytes` to `path` atomically (temporary file in the same folder, synced, renamed);
/// the error names the path.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    lambda_dpo_model::io::write_atomic_io(path, bytes)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_prologs() {
        assert!(is_number("0.41") && is_number("-1.2e-5") && is_number("0.41 ± 0.03"));
        assert!(!is_number("DPO") && !is_number("") && !is_number("NaN") && !is_number("inf"));
        assert_eq!(
            strip_xml_declaration("<?xml version=\"1.0\"?>\n<svg/>"),
            "<svg/>"
        );
        assert_eq!(strip_xml_declaration("<svg/>"), "<svg/>");
    }
}
