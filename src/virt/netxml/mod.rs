//! Reading and patching libvirt network XML.
//!
//! The patch must leave every byte it does not mean to change as it was:
//! comments, `dnsmasq:options`, attribute quoting, indentation. So it does
//! not rebuild the document; quick-xml's reader finds the byte positions of
//! the elements that matter, and the patch splices text in at those
//! positions. Parsing is the same single pass, so what [`parse`] reports is
//! exactly what [`set_bootp`] edits.

use std::net::IpAddr;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

mod dnsmasq;

pub use dnsmasq::{add_dnsmasq_options, dnsmasq_options_of, remove_dnsmasq_options, DNSMASQ_NS};

/// A `<bootp file=… server=…/>` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootp {
    pub file: String,
    pub server: Option<String>,
}

/// One `<ip>` block of a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpBlock {
    pub address: IpAddr,
    pub prefix: Option<u8>,
    /// `Some` when the block has a `<dhcp>` element.
    pub dhcp: Option<Dhcp>,
    /// `<tftp root='…'/>`: libvirt's dnsmasq then serves TFTP on this address.
    pub tftp_root: Option<String>,
    spans: IpSpans,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dhcp {
    pub ranges: usize,
    pub hosts: usize,
    pub bootp: Option<Bootp>,
}

/// Byte positions in the document, for splicing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct IpSpans {
    /// `<dhcp/>`: the whole empty tag.
    dhcp_empty: Option<(usize, usize)>,
    /// `</dhcp>`: where its end tag starts.
    dhcp_close: Option<usize>,
    /// The existing `<bootp …/>` (or `<bootp …>…</bootp>`).
    bootp: Option<(usize, usize)>,
}

/// What pxelab needs to know about a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkXml {
    pub name: String,
    pub bridge: Option<String>,
    /// Spanning tree on the bridge (libvirt's default when `stp` is absent).
    pub stp: bool,
    /// `<forward mode=…>`; `None` for an isolated network (no `<forward>`).
    pub forward: Option<String>,
    pub ips: Vec<IpBlock>,
}

impl NetworkXml {
    /// The IPv4 block that serves DHCP (libvirt allows DHCP on one IPv4 address).
    pub fn dhcp4(&self) -> Option<&IpBlock> {
        self.ips.iter().find(|ip| ip.address.is_ipv4() && ip.dhcp.is_some())
    }

    /// The network's first IPv4 address.
    pub fn ipv4(&self) -> Option<&IpBlock> {
        self.ips.iter().find(|ip| ip.address.is_ipv4())
    }

    /// The `<bootp>` of the IPv4 DHCP block, if any.
    pub fn bootp(&self) -> Option<&Bootp> {
        self.dhcp4()?.dhcp.as_ref()?.bootp.as_ref()
    }

    pub fn tftp_root(&self) -> Option<&str> {
        self.ips.iter().find_map(|ip| ip.tftp_root.as_deref())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("malformed network XML at byte {at}: {what}")]
    Malformed { at: u64, what: String },
    #[error("the XML is not a <network> definition")]
    NotNetwork,
    #[error("network {network:?} has no IPv4 <dhcp>; add one (virsh net-edit {network}) or use a DHCP server of your own (see `pxelab dhcp-config`)")]
    NoIpv4Dhcp { network: String },
    #[error("bootp {what} {value:?} has characters that do not belong in it")]
    BadValue { what: &'static str, value: String },
}

/// The `<bootp>` of a network XML; `None` when it has none or does not parse.
pub fn bootp_of(xml: &str) -> Option<Bootp> {
    parse(xml).ok()?.bootp().cloned()
}

/// Reads what pxelab needs from a network's XML.
pub fn parse(xml: &str) -> Result<NetworkXml, XmlError> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<String> = Vec::new();
    let mut net = NetworkXml { name: String::new(), bridge: None, stp: true, forward: None, ips: Vec::new() };
    let mut seen_root = false;
    let mut in_name = false;
    loop {
        let start = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| XmlError::Malformed { at: reader.error_position(), what: e.to_string() })?;
        let end = reader.buffer_position() as usize;
        match event {
            Event::Start(e) => {
                let name = e.name().as_ref().to_string();
                if !seen_root {
                    if name != "network" {
                        return Err(XmlError::NotNetwork);
                    }
                    seen_root = true;
                }
                element(&mut net, &stack, &e, start, end, false)?;
                in_name = stack.len() == 1 && name == "name";
                stack.push(name);
            }
            Event::Empty(e) => {
                if !seen_root {
                    return Err(XmlError::NotNetwork);
                }
                element(&mut net, &stack, &e, start, end, true)?;
            }
            Event::End(e) => {
                let name = e.name().as_ref().to_string();
                if stack.len() == 3 && name == "dhcp" && stack[1] == "ip" {
                    if let Some(ip) = net.ips.last_mut() {
                        ip.spans.dhcp_close = Some(start);
                    }
                }
                if stack.len() == 4 && name == "bootp" && stack[2] == "dhcp" {
                    if let Some((s, _)) = net.ips.last().and_then(|ip| ip.spans.bootp) {
                        net.ips.last_mut().expect("bootp seen inside an ip").spans.bootp = Some((s, end));
                    }
                }
                stack.pop();
                in_name = false;
            }
            Event::Text(t) if in_name => {
                let text = t.xml10_content();
                let text = quick_xml::escape::unescape(&text).map_err(|e| XmlError::Malformed { at: start as u64, what: e.to_string() })?;
                net.name.push_str(&text);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_root {
        return Err(XmlError::NotNetwork);
    }
    net.name = net.name.trim().to_string();
    Ok(net)
}

fn attr(e: &BytesStart, key: &str) -> Result<Option<String>, XmlError> {
    for a in e.attributes() {
        let a = a.map_err(|err| XmlError::Malformed { at: 0, what: err.to_string() })?;
        if a.key.as_ref() == key {
            let v = a.normalized_value(quick_xml::XmlVersion::Implicit1_0).map_err(|err| XmlError::Malformed { at: 0, what: err.to_string() })?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

/// Records one start or empty element found under `stack`.
fn element(net: &mut NetworkXml, stack: &[String], e: &BytesStart, start: usize, end: usize, empty: bool) -> Result<(), XmlError> {
    let name = e.name();
    let name = name.as_ref();
    let path: Vec<&str> = stack.iter().map(String::as_str).collect();
    match (path.as_slice(), name) {
        (["network"], "bridge") => {
            net.bridge = attr(e, "name")?;
            net.stp = attr(e, "stp")?.as_deref() != Some("off");
        }
        (["network"], "forward") => net.forward = Some(attr(e, "mode")?.unwrap_or_else(|| "nat".into())),
        (["network"], "ip") => {
            let address = attr(e, "address")?.unwrap_or_default();
            let Ok(address) = address.parse::<IpAddr>() else {
                return Err(XmlError::Malformed { at: start as u64, what: format!("<ip address={address:?}> is not an address") });
            };
            let prefix = match (attr(e, "prefix")?, attr(e, "netmask")?) {
                (Some(p), _) => p.parse().ok(),
                (None, Some(mask)) => mask.parse::<std::net::Ipv4Addr>().ok().map(|m| u32::from(m).count_ones() as u8),
                _ => None,
            };
            net.ips.push(IpBlock { address, prefix, dhcp: None, tftp_root: None, spans: IpSpans::default() });
        }
        (["network", "ip"], "dhcp") => {
            if let Some(ip) = net.ips.last_mut() {
                ip.dhcp = Some(Dhcp { ranges: 0, hosts: 0, bootp: None });
                if empty {
                    ip.spans.dhcp_empty = Some((start, end));
                }
            }
        }
        (["network", "ip"], "tftp") => {
            if let Some(ip) = net.ips.last_mut() {
                ip.tftp_root = attr(e, "root")?;
            }
        }
        (["network", "ip", "dhcp"], child) => {
            let bootp = if child == "bootp" { Some(Bootp { file: attr(e, "file")?.unwrap_or_default(), server: attr(e, "server")? }) } else { None };
            if let Some(dhcp) = net.ips.last_mut().and_then(|ip| ip.dhcp.as_mut()) {
                match child {
                    "range" => dhcp.ranges += 1,
                    "host" => dhcp.hosts += 1,
                    "bootp" => dhcp.bootp = bootp,
                    _ => {}
                }
            }
            if child == "bootp" {
                if let Some(ip) = net.ips.last_mut() {
                    ip.spans.bootp = Some((start, end));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// The network's XML with `bootp` set inside its IPv4 `<dhcp>`; nothing else changes.
pub fn set_bootp(xml: &str, bootp: &Bootp) -> Result<String, XmlError> {
    check_value("file", &bootp.file)?;
    if let Some(server) = &bootp.server {
        check_value("server", server)?;
    }
    let net = parse(xml)?;
    let ip = net.dhcp4().ok_or_else(|| XmlError::NoIpv4Dhcp { network: net.name.clone() })?;
    let element = match &bootp.server {
        Some(server) => format!("<bootp file='{}' server='{}'/>", bootp.file, server),
        None => format!("<bootp file='{}'/>", bootp.file),
    };
    let mut out = String::with_capacity(xml.len() + element.len() + 16);
    if let Some((start, end)) = ip.spans.bootp {
        out.push_str(&xml[..start]);
        out.push_str(&element);
        out.push_str(&xml[end..]);
    } else if let Some((start, end)) = ip.spans.dhcp_empty {
        let indent = indent_at(xml, start);
        out.push_str(&xml[..start]);
        out.push_str(&format!("<dhcp>\n{indent}  {element}\n{indent}</dhcp>"));
        out.push_str(&xml[end..]);
    } else if let Some(close) = ip.spans.dhcp_close {
        let indent = indent_at(xml, close);
        out.push_str(&xml[..close]);
        // `</dhcp>` sits at its own indent; the new child goes one level in.
        if indent.is_empty() && !xml[..close].ends_with('\n') {
            out.push_str(&element);
        } else {
            out.push_str(&format!("  {element}\n{indent}"));
        }
        out.push_str(&xml[close..]);
    } else {
        return Err(XmlError::NoIpv4Dhcp { network: net.name });
    }
    Ok(out)
}

/// The network's XML without a `<bootp>` in its IPv4 `<dhcp>` (and the
/// line it stood on); nothing else changes. Undoes [`set_bootp`] on a
/// network that had none.
pub fn remove_bootp(xml: &str) -> Result<String, XmlError> {
    let net = parse(xml)?;
    let Some((start, end)) = net.dhcp4().and_then(|ip| ip.spans.bootp) else {
        return Ok(xml.to_string());
    };
    // Take the whole line when the element is alone on it.
    let line_start = xml[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let alone = xml[line_start..start].chars().all(|c| c == ' ' || c == '\t') && xml[end..].starts_with('\n');
    let (cut_start, cut_end) = if alone { (line_start, end + 1) } else { (start, end) };
    Ok(format!("{}{}", &xml[..cut_start], &xml[cut_end..]))
}

fn check_value(what: &'static str, value: &str) -> Result<(), XmlError> {
    let ok = !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/:+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(XmlError::BadValue { what, value: value.chars().take(64).collect() })
    }
}

/// The spaces before `pos` on its line, if only spaces precede it there.
fn indent_at(xml: &str, pos: usize) -> &str {
    let line_start = xml[..pos].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let before = &xml[line_start..pos];
    if before.chars().all(|c| c == ' ' || c == '\t') {
        before
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: [&str; 2] = ["dhcp-userclass=set:ipxe,iPXE", "dhcp-boot=tag:ipxe,http://10.0.0.1/boot.ipxe"];

    fn opts() -> Vec<String> {
        OPTS.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dnsmasq_options_are_added_with_their_namespace() {
        let xml = "<network>\n  <name>lab</name>\n  <ip address='10.0.0.1' prefix='24'>\n    <dhcp/>\n  </ip>\n</network>\n";
        let patched = add_dnsmasq_options(xml, &opts()).unwrap();
        assert_eq!(
            patched,
            "<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>\n  <name>lab</name>\n  <ip address='10.0.0.1' prefix='24'>\n    <dhcp/>\n  </ip>\n  <dnsmasq:options>\n    <dnsmasq:option value='dhcp-userclass=set:ipxe,iPXE'/>\n    <dnsmasq:option value='dhcp-boot=tag:ipxe,http://10.0.0.1/boot.ipxe'/>\n  </dnsmasq:options>\n</network>\n"
        );
        assert_eq!(dnsmasq_options_of(&patched), opts());
        assert_eq!(add_dnsmasq_options(&patched, &opts()).unwrap(), patched, "idempotent");
        assert_eq!(parse(&patched).unwrap().name, "lab");
    }

    #[test]
    fn existing_dnsmasq_options_keep_their_prefix_and_lines() {
        let xml = "<network xmlns:dm=\"http://libvirt.org/schemas/network/dnsmasq/1.0\">\n  <name>lab</name>\n  <dm:options>\n    <dm:option value=\"log-dhcp\"/>\n  </dm:options>\n</network>";
        let patched = add_dnsmasq_options(xml, &opts()).unwrap();
        assert_eq!(
            patched,
            "<network xmlns:dm=\"http://libvirt.org/schemas/network/dnsmasq/1.0\">\n  <name>lab</name>\n  <dm:options>\n    <dm:option value=\"log-dhcp\"/>\n    <dm:option value='dhcp-userclass=set:ipxe,iPXE'/>\n    <dm:option value='dhcp-boot=tag:ipxe,http://10.0.0.1/boot.ipxe'/>\n  </dm:options>\n</network>"
        );
        assert_eq!(dnsmasq_options_of(&patched).len(), 3);
        // Another namespace's `options` is not ours.
        let other = "<network xmlns:x='urn:other'><name>n</name><x:options/></network>";
        let patched = add_dnsmasq_options(other, &opts()).unwrap();
        assert!(patched.contains("<x:options/>") && patched.contains("<dnsmasq:options>"), "{patched}");
        assert!(add_dnsmasq_options(other, &["a'b".to_string()]).is_err());
    }

    const DEFAULT: &str = "<network>\n  <name>default</name>\n  <uuid>327f96fb-9935-477d-895e-73b791f9b2f9</uuid>\n  <forward mode='nat'/>\n  <bridge name='virbr0' stp='on' delay='0'/>\n  <mac address='52:54:00:30:5c:25'/>\n  <ip address='192.168.122.1' netmask='255.255.255.0'>\n    <dhcp>\n      <range start='192.168.122.2' end='192.168.122.254'/>\n    </dhcp>\n  </ip>\n</network>\n";

    fn bootp(server: &str) -> Bootp {
        Bootp { file: "pxelinux.0".into(), server: Some(server.into()) }
    }

    #[test]
    fn parses_the_default_network() {
        let net = parse(DEFAULT).unwrap();
        assert_eq!(net.name, "default");
        assert_eq!(net.bridge.as_deref(), Some("virbr0"));
        assert_eq!(net.forward.as_deref(), Some("nat"));
        assert!(net.stp, "stp='on'");
        assert!(!parse(&DEFAULT.replace("stp='on'", "stp='off'")).unwrap().stp);
        assert!(parse(&DEFAULT.replace(" stp='on'", "")).unwrap().stp, "libvirt's default is on");
        let ip = net.dhcp4().unwrap();
        assert_eq!(ip.address, "192.168.122.1".parse::<IpAddr>().unwrap());
        assert_eq!(ip.prefix, Some(24));
        assert_eq!(ip.dhcp.as_ref().unwrap().ranges, 1);
        assert_eq!(ip.dhcp.as_ref().unwrap().bootp, None);
    }

    #[test]
    fn patches_the_default_network_touching_nothing_else() {
        let patched = set_bootp(DEFAULT, &bootp("192.168.122.1")).unwrap();
        let want = DEFAULT.replace("    </dhcp>", "      <bootp file='pxelinux.0' server='192.168.122.1'/>\n    </dhcp>");
        assert_eq!(patched, want);
        assert_eq!(parse(&patched).unwrap().dhcp4().unwrap().dhcp.as_ref().unwrap().bootp, Some(bootp("192.168.122.1")));
        assert_eq!(remove_bootp(&patched).unwrap(), DEFAULT);
        // Patching twice is patching once.
        assert_eq!(set_bootp(&patched, &bootp("192.168.122.1")).unwrap(), patched);
    }

    #[test]
    fn keeps_dnsmasq_options_comments_and_quoting() {
        let xml = "<network xmlns:dnsmasq=\"http://libvirt.org/schemas/network/dnsmasq/1.0\">\n  <!-- lab network, do not delete -->\n  <name>lab</name>\n  <bridge name=\"virbr9\"/>\n  <ip address=\"10.9.0.1\" prefix=\"24\">\n    <dhcp>\n      <range start=\"10.9.0.10\" end=\"10.9.0.99\"/>\n      <host mac=\"52:54:00:00:00:01\" ip=\"10.9.0.5\"/>\n    </dhcp>\n  </ip>\n  <dnsmasq:options>\n    <dnsmasq:option value=\"log-dhcp\"/>\n  </dnsmasq:options>\n</network>";
        let patched = set_bootp(xml, &bootp("10.9.0.1")).unwrap();
        assert!(patched.contains("<!-- lab network, do not delete -->"));
        assert!(patched.contains("<dnsmasq:option value=\"log-dhcp\"/>"));
        assert_eq!(remove_bootp(&patched).unwrap(), xml);
        let net = parse(&patched).unwrap();
        assert_eq!(net.forward, None, "no <forward>: isolated");
        assert_eq!(net.dhcp4().unwrap().dhcp.as_ref().unwrap().hosts, 1);
    }

    #[test]
    fn picks_the_ipv4_block_with_dhcp_among_several() {
        let xml = "<network>\n  <name>multi</name>\n  <ip address='10.1.0.1' prefix='24'/>\n  <ip family='ipv6' address='fd00:1::1' prefix='64'>\n    <dhcp>\n      <range start='fd00:1::10' end='fd00:1::99'/>\n    </dhcp>\n  </ip>\n  <ip address='10.2.0.1' netmask='255.255.0.0'>\n    <dhcp>\n      <range start='10.2.0.10' end='10.2.0.99'/>\n    </dhcp>\n  </ip>\n</network>\n";
        let net = parse(xml).unwrap();
        assert_eq!(net.ips.len(), 3);
        assert_eq!(net.dhcp4().unwrap().address.to_string(), "10.2.0.1");
        assert_eq!(net.dhcp4().unwrap().prefix, Some(16));
        let patched = set_bootp(xml, &bootp("10.2.0.1")).unwrap();
        let ipv6_part = &patched[patched.find("fd00:1::1").unwrap()..patched.find("10.2.0.1").unwrap()];
        assert!(!ipv6_part.contains("bootp"), "bootp went into the IPv6 block: {patched}");
        assert_eq!(remove_bootp(&patched).unwrap(), xml);
    }

    #[test]
    fn replaces_an_existing_bootp() {
        let xml = "<network>\n  <name>n</name>\n  <ip address='10.3.0.1' prefix='24'>\n    <dhcp>\n      <range start='10.3.0.2' end='10.3.0.9'/>\n      <bootp file='old.0' server='10.3.0.200'/>\n    </dhcp>\n  </ip>\n</network>\n";
        let net = parse(xml).unwrap();
        assert_eq!(net.dhcp4().unwrap().dhcp.as_ref().unwrap().bootp, Some(Bootp { file: "old.0".into(), server: Some("10.3.0.200".into()) }));
        let patched = set_bootp(xml, &bootp("10.3.0.1")).unwrap();
        assert_eq!(patched, xml.replace("<bootp file='old.0' server='10.3.0.200'/>", "<bootp file='pxelinux.0' server='10.3.0.1'/>"));
    }

    #[test]
    fn fills_an_empty_dhcp_element() {
        let xml = "<network>\n  <name>e</name>\n  <ip address='10.4.0.1' prefix='24'>\n    <dhcp/>\n  </ip>\n</network>\n";
        let patched = set_bootp(xml, &bootp("10.4.0.1")).unwrap();
        assert_eq!(
            patched,
            "<network>\n  <name>e</name>\n  <ip address='10.4.0.1' prefix='24'>\n    <dhcp>\n      <bootp file='pxelinux.0' server='10.4.0.1'/>\n    </dhcp>\n  </ip>\n</network>\n"
        );
    }

    #[test]
    fn refuses_what_it_cannot_patch() {
        let no_dhcp = "<network>\n  <name>nod</name>\n  <ip address='10.5.0.1' prefix='24'/>\n</network>";
        assert_eq!(set_bootp(no_dhcp, &bootp("10.5.0.1")), Err(XmlError::NoIpv4Dhcp { network: "nod".into() }));
        let v6_only = "<network><name>six</name><ip family='ipv6' address='fd00::1' prefix='64'><dhcp/></ip></network>";
        assert!(matches!(set_bootp(v6_only, &bootp("10.0.0.1")), Err(XmlError::NoIpv4Dhcp { .. })));
        assert_eq!(parse("<domain><name>x</name></domain>"), Err(XmlError::NotNetwork));
        assert!(matches!(parse("<network><name>x</name>"), Ok(_) | Err(XmlError::Malformed { .. })));
        assert!(matches!(parse("<network><ip address='nope'/></network>"), Err(XmlError::Malformed { .. })));
        let bad = Bootp { file: "x' server='evil".into(), server: None };
        assert!(matches!(set_bootp(DEFAULT, &bad), Err(XmlError::BadValue { what: "file", .. })));
    }

    #[test]
    fn reports_a_tftp_root() {
        let xml = "<network><name>t</name><ip address='10.6.0.1' prefix='24'><tftp root='/srv/tftp'/><dhcp><range start='10.6.0.2' end='10.6.0.9'/></dhcp></ip></network>";
        let net = parse(xml).unwrap();
        assert_eq!(net.tftp_root(), Some("/srv/tftp"));
        // One-line XML still patches and unpatches exactly.
        let patched = set_bootp(xml, &bootp("10.6.0.1")).unwrap();
        assert!(patched.contains("<bootp file='pxelinux.0' server='10.6.0.1'/></dhcp>"), "{patched}");
        assert_eq!(remove_bootp(&patched).unwrap(), xml);
    }
}
