//! `pxelab down` and `pxelab status`.

use super::output::{self, LabDisplay, Outcome};
use super::{runtime, Globals};
use crate::error::Result;
use crate::lab;

/// `pxelab down`.
pub fn down(globals: &Globals) -> Result<Outcome> {
    let mut display = LabDisplay::lines(globals.json);
    let report = runtime()?.block_on(lab::down(&globals.uri, &mut |event: &lab::LabEvent| display.show(event)))?;
    if globals.json {
        output::json_line(&report);
    } else {
        output::text(&output::down_text(&report));
    }
    Ok(Outcome::Done)
}

/// `pxelab status`.
pub fn status(globals: &Globals) -> Result<Outcome> {
    let report = lab::status()?;
    if globals.json {
        output::json(&report);
    } else {
        output::text(&output::status_text(&report));
    }
    Ok(Outcome::Done)
}
