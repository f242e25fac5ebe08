//! The host's firewall: letting the lab's guests reach TFTP and FTP.
//!
//! libvirt's own rules accept DHCP and DNS from a network's bridge, nothing
//! more; a host whose INPUT chain drops or rejects other traffic from the
//! bridge would stop a PXE boot at the first TFTP request. `up` asks
//! [`blocking_rule`] whether that is so and, only then, inserts ACCEPT rules
//! for the lab's ports on that bridge at the top of INPUT, each tagged with
//! the comment `pxelab`, and removes exactly those on teardown.
//!
//! `up` changes iptables only (which libvirt's iptables backend also uses).
//! firewalld zones and nftables chains that iptables does not show are read
//! here too ([`firewalld_gap`], [`nft_dropping_input`]), for `doctor` to name,
//! but never changed. Every function here runs subprocesses: call them
//! through `crate::blocking::run` from async code.

use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

/// One ACCEPT rule pxelab adds: a protocol and a destination port or range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub protocol: String,
    /// `69`, or a range `50000:50100`.
    pub port: String,
}

/// The rules a lab on `bridge` needs: TFTP, FTP control, FTP passive data,
/// and HTTP when it serves HTTP.
pub fn lab_rules(tftp: u16, ftp: u16, http: Option<u16>, passive: &std::ops::RangeInclusive<u16>) -> Vec<Rule> {
    let mut rules = vec![
        Rule { protocol: "udp".into(), port: tftp.to_string() },
        Rule { protocol: "tcp".into(), port: ftp.to_string() },
        Rule { protocol: "tcp".into(), port: format!("{}:{}", passive.start(), passive.end()) },
    ];
    rules.extend(http.map(|port| Rule { protocol: "tcp".into(), port: port.to_string() }));
    rules
}

fn rule_args(bridge: &str, rule: &Rule) -> Vec<String> {
    ["-i", bridge, "-p", &rule.protocol, "-m", &rule.protocol, "--dport", &rule.port, "-m", "comment", "--comment", "pxelab", "-j", "ACCEPT"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The INPUT rule (or policy) that would stop traffic from `bridge` to one
/// of `rules`' ports, if iptables has one; `None` when nothing blocks, or
/// iptables is not there to ask.
pub fn blocking_rule(bridge: &str, rules: &[Rule]) -> Option<String> {
    let out = Command::new("iptables").args(["-w", "-S", "INPUT"]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    blocking_rule_in(&String::from_utf8_lossy(&out.stdout), bridge, rules)
}

/// [`blocking_rule`] over the text of `iptables -S INPUT`.
pub fn blocking_rule_in(listing: &str, bridge: &str, rules: &[Rule]) -> Option<String> {
    for line in listing.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"-P") {
            if matches!(words.get(2), Some(&"DROP") | Some(&"REJECT")) {
                return Some(line.to_string());
            }
            continue;
        }
        let value = |flag: &str| words.iter().position(|w| *w == flag).and_then(|i| words.get(i + 1)).copied();
        // Our own rules, or anything earlier that accepts, are not blocks;
        // only a DROP/REJECT that could match the lab's traffic is.
        if !matches!(value("-j"), Some("DROP") | Some("REJECT")) {
            continue;
        }
        if value("-i").is_some_and(|i| i != bridge) || words.contains(&"!") {
            continue;
        }
        let protocol = value("-p");
        let dport = value("--dport");
        let hits = rules.iter().any(|r| protocol.is_none_or(|p| p == r.protocol) && dport.is_none_or(|d| ports_overlap(d, &r.port)));
        if hits {
            return Some(line.to_string());
        }
    }
    None
}

/// `69` or `50000:50100` (iptables' spelling) as an inclusive range; `None` for a port given by name.
fn port_range(s: &str) -> Option<(u16, u16)> {
    match s.split_once(':') {
        Some((lo, hi)) => Some((lo.parse().ok()?, hi.parse().ok()?)),
        None => s.parse().ok().map(|p| (p, p)),
    }
}

fn ports_overlap(a: &str, b: &str) -> bool {
    match (port_range(a), port_range(b)) {
        (Some((a0, a1)), Some((b0, b1))) => a0 <= b1 && b0 <= a1,
        // A port given by name (`ftp`, `tftp`): assume it may be ours.
        _ => true,
    }
}

/// Inserts the ACCEPT rules for `bridge` at the top of INPUT.
pub fn open(bridge: &str, rules: &[Rule]) -> Result<(), String> {
    for rule in rules {
        let args: Vec<String> = ["-w", "-I", "INPUT", "1"].iter().map(|s| s.to_string()).chain(rule_args(bridge, rule)).collect();
        iptables(&args).map_err(|e| format!("iptables could not add an ACCEPT rule for {}/{} on {bridge}: {e}", rule.port, rule.protocol))?;
    }
    Ok(())
}

/// Removes the rules [`open`] added; rules already gone are fine.
pub fn close(bridge: &str, rules: &[Rule]) -> Result<(), String> {
    for rule in rules {
        // -C first: -D of a missing rule is an error we do not want to report.
        if present(bridge, rule) {
            let args: Vec<String> = ["-w", "-D", "INPUT"].iter().map(|s| s.to_string()).chain(rule_args(bridge, rule)).collect();
            iptables(&args).map_err(|e| format!("iptables could not remove pxelab's rule for {}/{} on {bridge}: {e}", rule.port, rule.protocol))?;
        }
    }
    Ok(())
}

/// Whether pxelab's ACCEPT rules for `bridge` are all in INPUT (a lab opened them).
pub fn opened(bridge: &str, rules: &[Rule]) -> bool {
    rules.iter().all(|rule| present(bridge, rule))
}

/// Whether pxelab's ACCEPT rule for `rule` on `bridge` is in INPUT (`iptables -C`).
fn present(bridge: &str, rule: &Rule) -> bool {
    // A missing rule is the answer, not an error: iptables' own complaint
    // ("Bad rule (does a matching rule exist in that chain?)") stays quiet.
    Command::new("iptables")
        .args(["-w", "-C", "INPUT"])
        .args(rule_args(bridge, rule))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs iptables with `args`; its stderr becomes part of the error.
fn iptables(args: &[String]) -> Result<(), String> {
    let out = Command::new("iptables").args(args).stdin(Stdio::null()).output().map_err(|e| format!("cannot run iptables: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// When firewalld runs: the lab's ports its zone for `bridge` does not
/// open, as `firewall-cmd` arguments that would. `None` when firewalld is
/// not running or lets everything through.
pub fn firewalld_gap(bridge: &str, rules: &[Rule]) -> Option<(String, Vec<String>)> {
    let cmd = |args: &[&str]| -> Option<String> {
        let out = Command::new("firewall-cmd").args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    cmd(&["--state"])?;
    let zone = cmd(&[&format!("--get-zone-of-interface={bridge}")]).unwrap_or_else(|| "libvirt".into());
    let services = cmd(&[&format!("--zone={zone}"), "--list-services"]).unwrap_or_default();
    let ports = cmd(&[&format!("--zone={zone}"), "--list-ports"]).unwrap_or_default();
    let missing = firewalld_missing(&services, &ports, rules);
    (!missing.is_empty()).then_some((zone, missing))
}

/// [`firewalld_gap`] over `--list-services` and `--list-ports` output.
pub fn firewalld_missing(services: &str, ports: &str, rules: &[Rule]) -> Vec<String> {
    let services: Vec<&str> = services.split_whitespace().collect();
    let ports: Vec<(&str, &str)> = ports.split_whitespace().filter_map(|p| p.split_once('/')).collect();
    rules
        .iter()
        .filter(|rule| {
            let by_service = match (rule.protocol.as_str(), rule.port.as_str()) {
                ("udp", "69") => services.contains(&"tftp"),
                ("tcp", "21") => services.contains(&"ftp"),
                _ => false,
            };
            let by_port = ports.iter().any(|(p, proto)| *proto == rule.protocol && ports_cover(&p.replace('-', ":"), &rule.port));
            !by_service && !by_port
        })
        .map(|rule| format!("--add-port={}/{}", rule.port.replace(':', "-"), rule.protocol))
        .collect()
}

fn ports_cover(outer: &str, inner: &str) -> bool {
    matches!((port_range(outer), port_range(inner)), (Some((o0, o1)), Some((i0, i1))) if o0 <= i0 && i1 <= o1)
}

/// An nftables input chain, outside the tables iptables itself manages,
/// whose policy drops: pxelab does not read nft rules, so it can only warn.
pub fn nft_dropping_input() -> Option<String> {
    let out = Command::new("nft").args(["list", "ruleset"]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    nft_dropping_input_in(&String::from_utf8_lossy(&out.stdout))
}

/// [`nft_dropping_input`] over the text of `nft list ruleset`.
pub fn nft_dropping_input_in(ruleset: &str) -> Option<String> {
    let mut table = String::new();
    let mut chain = String::new();
    for line in ruleset.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("table ") {
            table = rest.trim_end_matches('{').trim().to_string();
        } else if let Some(rest) = line.strip_prefix("chain ") {
            chain = rest.trim_end_matches('{').trim().to_string();
        } else if line.contains("hook input") && line.contains("policy drop") {
            // iptables-nft's own tables are what `iptables -S` already showed.
            if table != "ip filter" && table != "ip6 filter" {
                return Some(format!("table {table}, chain {chain}"));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Vec<Rule> {
        lab_rules(69, 21, None, &(50000..=50100))
    }

    #[test]
    fn an_accepting_firewall_blocks_nothing() {
        let listing = "-P INPUT ACCEPT\n-A INPUT -j LIBVIRT_INP\n-A INPUT -i lo -j ACCEPT\n";
        assert_eq!(blocking_rule_in(listing, "virbr0", &rules()), None);
    }

    #[test]
    fn drops_that_match_the_lab_are_found() {
        assert!(blocking_rule_in("-P INPUT DROP\n", "virbr0", &rules()).is_some());
        assert!(blocking_rule_in("-P INPUT ACCEPT\n-A INPUT -j REJECT --reject-with icmp-host-prohibited\n", "virbr0", &rules()).is_some());
        assert!(blocking_rule_in("-A INPUT -i virbr0 -p udp -m udp --dport 69 -j REJECT\n", "virbr0", &rules()).is_some());
        assert!(blocking_rule_in("-A INPUT -p tcp -m tcp --dport 50050:50060 -j DROP\n", "virbr0", &rules()).is_some());
    }

    #[test]
    fn drops_that_cannot_match_the_lab_are_ignored() {
        for listing in [
            "-A INPUT -i eth0 -j DROP\n",
            "-A INPUT -i virbr0 -p tcp -m tcp --dport 22 -j DROP\n",
            "-A INPUT -i virbr0 -p udp -m udp --dport 53 -j REJECT\n",
            "-A INPUT ! -i virbr0 -j DROP\n",
        ] {
            assert_eq!(blocking_rule_in(listing, "virbr0", &rules()), None, "{listing}");
        }
    }

    #[test]
    fn firewalld_zone_gaps_are_named() {
        let rules = rules();
        assert_eq!(firewalld_missing("dhcp dns ssh tftp", "", &rules), vec!["--add-port=21/tcp", "--add-port=50000-50100/tcp"]);
        assert!(firewalld_missing("tftp ftp", "50000-50100/tcp", &rules).is_empty());
        assert!(firewalld_missing("", "69/udp 21/tcp 49000-51000/tcp", &rules).is_empty());
        assert_eq!(firewalld_missing("tftp ftp", "50000-50010/tcp", &rules), vec!["--add-port=50000-50100/tcp"]);
    }

    #[test]
    fn nft_input_drop_outside_iptables_tables() {
        let ours = "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n}\n";
        assert_eq!(nft_dropping_input_in(ours).as_deref(), Some("table inet filter, chain input"));
        let iptables_nft = "table ip filter {\n\tchain INPUT {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n}\n";
        assert_eq!(nft_dropping_input_in(iptables_nft), None);
        assert_eq!(nft_dropping_input_in("table inet filter {\n chain input {\n type filter hook input priority 0; policy accept;\n }\n}\n"), None);
    }
}
