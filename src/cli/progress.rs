//! Progress bars on stderr (drawn only on a terminal) and Ctrl-C as a cancel signal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;

/// A bar over `total` events, with rate and time left.
pub fn bar(total: u64, verb: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{verb} {{bar:40}} {{pos}}/{{len}} events  {{per_sec}}  {{eta}} left"
        ))
        .expect("the template is valid"),
    );
    bar
}

/// Turns true at the first Ctrl-C, so a long operation can stop at a clean point.
pub fn cancel_on_ctrl_c() -> watch::Receiver<bool> {
    let (cancel, cancelled) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: stopping at a clean point");
            let _ = cancel.send(true);
        }
    });
    cancelled
}
