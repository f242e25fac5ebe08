//! A network's raw dnsmasq options (`<dnsmasq:options>`, libvirt >= 5.6):
//! read, added and taken out again as text edits, so that everything else
//! in the XML stays byte for byte (the journal restores by comparison).

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::{attr, indent_at, XmlError};

/// libvirt's namespace for raw dnsmasq options (libvirt >= 5.6).
pub const DNSMASQ_NS: &str = "http://libvirt.org/schemas/network/dnsmasq/1.0";

/// Where a network's dnsmasq options live in its XML.
#[derive(Debug, Default)]
struct DnsmasqSpans {
    /// Each `<P:option …/>` element: where it starts and ends, and its value.
    option_spans: Vec<(usize, usize, String)>,
    /// The byte just before the root `<network …>` tag's `>`.
    root_tag_end: usize,
    /// The prefix bound to [`DNSMASQ_NS`] on the root, if any.
    prefix: Option<String>,
    /// `<P:options/>`: the whole empty tag.
    options_empty: Option<(usize, usize)>,
    /// `</P:options>`: where its end tag starts.
    options_close: Option<usize>,
    /// `</network>`: where it starts.
    root_close: usize,
    /// Every `<P:option value='…'/>`.
    values: Vec<String>,
}

fn dnsmasq_spans(xml: &str) -> Result<DnsmasqSpans, XmlError> {
    let mut reader = Reader::from_str(xml);
    let mut spans = DnsmasqSpans::default();
    let mut depth = 0usize;
    let mut in_options = false;
    loop {
        let start = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| XmlError::Malformed { at: reader.error_position(), what: e.to_string() })?;
        let end = reader.buffer_position() as usize;
        let local = |e: &BytesStart| -> Option<String> {
            let name = e.name().as_ref().to_string();
            let (prefix, local) = name.split_once(':')?;
            (Some(prefix) == spans.prefix.as_deref()).then(|| local.to_string())
        };
        match event {
            Event::Start(e) | Event::Empty(e) if depth == 0 => {
                if e.name().as_ref() != "network" {
                    return Err(XmlError::NotNetwork);
                }
                spans.root_tag_end = xml[..end].rfind('>').unwrap_or(end);
                for a in e.attributes().flatten() {
                    if let Some(prefix) = a.key.as_ref().strip_prefix("xmlns:") {
                        if a.value == DNSMASQ_NS {
                            spans.prefix = Some(prefix.to_string());
                        }
                    }
                }
                depth = 1;
            }
            Event::Start(e) => {
                if depth == 1 && local(&e).as_deref() == Some("options") {
                    in_options = true;
                }
                depth += 1;
            }
            Event::Empty(e) => {
                let name = local(&e);
                if depth == 1 && name.as_deref() == Some("options") {
                    spans.options_empty = Some((start, end));
                } else if in_options && depth == 2 && name.as_deref() == Some("option") {
                    if let Some(value) = attr(&e, "value")? {
                        spans.option_spans.push((start, end, value.clone()));
                        spans.values.push(value);
                    }
                }
            }
            Event::End(e) => {
                depth -= 1;
                if depth == 1 && in_options {
                    spans.options_close = Some(start);
                    in_options = false;
                } else if depth == 0 && e.name().as_ref() == "network" {
                    spans.root_close = start;
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(spans)
}

/// The network's raw dnsmasq options (`<dnsmasq:option value=…/>`), in order.
pub fn dnsmasq_options_of(xml: &str) -> Vec<String> {
    dnsmasq_spans(xml).map(|s| s.values).unwrap_or_default()
}

/// The network's XML with `options` added to its dnsmasq options (the
/// namespace declared on the root when missing, the block made when there
/// is none); options already there are not added twice, nothing else changes.
pub fn add_dnsmasq_options(xml: &str, options: &[String]) -> Result<String, XmlError> {
    for option in options {
        let ok = !option.is_empty() && option.bytes().all(|b| b.is_ascii_graphic() && !b"'\"<>&".contains(&b));
        if !ok {
            return Err(XmlError::BadValue { what: "dnsmasq option", value: option.chars().take(64).collect() });
        }
    }
    let spans = dnsmasq_spans(xml)?;
    let new: Vec<&String> = options.iter().filter(|o| !spans.values.contains(o)).collect();
    if new.is_empty() {
        return Ok(xml.to_string());
    }
    let prefix = spans.prefix.clone().unwrap_or_else(|| "dnsmasq".into());
    let lines = |indent: &str| new.iter().map(|o| format!("{indent}<{prefix}:option value='{o}'/>\n")).collect::<String>();
    let mut out = String::with_capacity(xml.len() + 256);
    let mut at = 0;
    if spans.prefix.is_none() {
        let tag_end = if xml[..spans.root_tag_end].ends_with('/') { spans.root_tag_end - 1 } else { spans.root_tag_end };
        out.push_str(&xml[..tag_end]);
        out.push_str(&format!(" xmlns:{prefix}='{DNSMASQ_NS}'"));
        at = tag_end;
    }
    if let Some(close) = spans.options_close {
        let indent = indent_at(xml, close);
        out.push_str(&xml[at..close]);
        let child = format!("{indent}  ");
        let text = lines(&child);
        // `</P:options>` sits on its own line: the new lines go before its indent.
        if !indent.is_empty() || xml[..close].ends_with('\n') {
            out.truncate(out.len() - indent.len());
            out.push_str(&text);
            out.push_str(indent);
        } else {
            out.push_str(&text);
        }
        out.push_str(&xml[close..]);
    } else if let Some((start, end)) = spans.options_empty {
        let indent = indent_at(xml, start);
        out.push_str(&xml[at..start]);
        out.push_str(&format!("<{prefix}:options>\n{}{indent}</{prefix}:options>", lines(&format!("{indent}  "))));
        out.push_str(&xml[end..]);
    } else {
        let close = spans.root_close;
        out.push_str(&xml[at..close]);
        let block = format!("  <{prefix}:options>\n{}  </{prefix}:options>\n", lines("    "));
        if !xml[..close].ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&block);
        out.push_str(&xml[close..]);
    }
    Ok(out)
}

/// The network's XML without the dnsmasq options in `options` (each
/// element, and the line it stood on when alone there); nothing else changes.
pub fn remove_dnsmasq_options(xml: &str, options: &[String]) -> Result<String, XmlError> {
    let spans = dnsmasq_spans(xml)?;
    let mut out = String::with_capacity(xml.len());
    let mut at = 0;
    for (start, end, value) in &spans.option_spans {
        if !options.contains(value) {
            continue;
        }
        let line_start = xml[..*start].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let alone = xml[line_start..*start].chars().all(|c| c == ' ' || c == '\t') && xml[*end..].starts_with('\n');
        let (cut_start, cut_end) = if alone { (line_start, end + 1) } else { (*start, *end) };
        out.push_str(&xml[at..cut_start]);
        at = cut_end;
    }
    out.push_str(&xml[at..]);
    Ok(out)
}
