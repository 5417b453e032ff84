//! Which addresses a webhook may reach.
//!
//! A webhook URL is chosen by an admin, but a stolen admin session or a
//! careless one could point it at the service's own network: the cloud
//! metadata endpoint, a database port, an internal admin page. So every
//! address is checked after name resolution, on the addresses actually
//! connected to (a name that resolves to a public address when saved and a
//! private one when sent, DNS rebinding, gains nothing), and IPv6 forms
//! that carry an IPv4 address inside are judged by that address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// The addresses a webhook may not reach unless the operator lists them.
#[derive(Clone, Debug, Default)]
pub struct AddressPolicy {
    /// `THREATWATCH_WEBHOOK_ALLOW_NETS`: ranges the operator trusts (an
    /// internal receiver, a test's loopback listener).
    allow: Vec<IpNet>,
}

impl AddressPolicy {
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self { allow }
    }

    /// Whether the operator listed `ip`.
    pub fn allowed(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allow.iter().any(|net| net.contains(&ip))
    }

    /// Why `ip` may not be called, or `None` when it may. `plain_http`:
    /// an `http://` URL, which only a listed address may take, since
    /// nothing then protects the body or the signature's secrecy in
    /// transit.
    pub fn refusal(&self, ip: IpAddr, plain_http: bool) -> Option<String> {
        if self.allowed(ip) {
            return None;
        }
        if let Some(class) = special(ip) {
            return Some(format!(
                "{ip} is a {class} address; list it in THREATWATCH_WEBHOOK_ALLOW_NETS to allow it"
            ));
        }
        if plain_http {
            return Some(format!(
                "http:// may only reach addresses listed in THREATWATCH_WEBHOOK_ALLOW_NETS \
                 ({ip} is not); use https://"
            ));
        }
        None
    }
}

/// The kind of address `ip` is when it is not a public unicast address.
fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => special_v4(v4),
            None => special_v6(v6),
        },
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, ..) => "unspecified (0.0.0.0/8)",
        (127, ..) => "loopback",
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => "private",
        (169, 254, _) => "link-local (and cloud metadata)",
        (100, 64..=127, _) => "shared (CGNAT, and some clouds' metadata)",
        (192, 0, 0) => "IETF protocol assignment",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, ..) => "multicast",
        (240..=255, ..) => "reserved or broadcast",
        _ => return None,
    })
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(if ip.is_unspecified() {
        "unspecified"
    } else if ip.is_loopback() {
        "loopback"
    } else if s[0] & 0xfe00 == 0xfc00 {
        "unique-local (and cloud metadata)"
    } else if s[0] & 0xffc0 == 0xfe80 {
        "link-local"
    } else if s[0] & 0xffc0 == 0xfec0 {
        "site-local"
    } else if s[0] & 0xff00 == 0xff00 {
        "multicast"
    } else {
        return None;
    })
}

/// The IPv4 address inside an IPv6 one that carries it: IPv4-mapped and
/// -compatible, NAT64 (64:ff9b::/96) and 6to4 (2002::/16). Each reaches the
/// IPv4 address through some path, so each is judged as it.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, ..] => Some(low),
        [0, 0, 0, 0, 0, 0, ..] if !ip.is_loopback() && !ip.is_unspecified() => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(policy: &AddressPolicy, ip: &str) -> bool {
        policy.refusal(ip.parse().unwrap(), false).is_some()
    }

    #[test]
    fn inner_and_special_addresses_are_refused() {
        let p = AddressPolicy::default();
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.100.100.200",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "2002:7f00:1::",
        ] {
            assert!(refused(&p, ip), "{ip} should be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let p = AddressPolicy::default();
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:0808:0808::1",
        ] {
            assert!(!refused(&p, ip), "{ip} should pass");
        }
    }

    #[test]
    fn listed_nets_are_allowed_and_plain_http_needs_them() {
        let p = AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(!refused(&p, "127.0.0.1"));
        assert!(
            !refused(&p, "::ffff:127.0.0.1"),
            "judged by the IPv4 inside"
        );
        assert!(refused(&p, "10.0.0.1"));
        assert!(p.refusal("127.0.0.1".parse().unwrap(), true).is_none());
        let msg = p.refusal("8.8.8.8".parse().unwrap(), true).unwrap();
        assert!(msg.contains("https://"), "{msg}");
        let msg = p
            .refusal("169.254.169.254".parse().unwrap(), false)
            .unwrap();
        assert!(msg.contains("THREATWATCH_WEBHOOK_ALLOW_NETS"), "{msg}");
    }
}
