//! Progress bars on stderr with ETA and tokens/s (hidden automatically when stderr is not a
//! terminal, so logs stay clean).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting tokens; the message shows the unit being processed.
pub fn tokens_bar(total_tokens: u64, what: &str) -> ProgressBar {
    let bar =
        ProgressBar::with_draw_target(Some(total_tokens), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} tok  {per_sec}  ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}
