//! Which network addresses the service may reach on a user's say-so.
//!
//! Two things connect where a user points them: the e-mail channel (the source's SMTP host) and
//! the Feishu channel (it downloads a message's cover image to upload it). Left open, a user
//! could make the service read the cloud metadata endpoint (169.254.169.254), probe hosts inside
//! the deployment's network, or scan ports by reading the error messages. So both refuse
//! addresses that are not on the public internet, at validation (literal addresses and
//! `localhost`) and again when connecting (what a name resolves to), unless the deployment
//! allows local endpoints (local stacks and tests).
use std::net::{IpAddr, Ipv4Addr};

/// True for an address on the public internet; false for loopback, private, shared (CGNAT),
/// link-local, unique-local, site-local, unspecified, multicast, broadcast, documentation,
/// benchmarking and reserved ranges, and for the IPv6 forms that carry an IPv4 address
/// (mapped, compatible, translated, NAT64, 6to4) when that address is one of those.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                let [a, b] = hi.to_be_bytes();
                let [c, d] = lo.to_be_bytes();
                Ipv4Addr::new(a, b, c, d)
            };
            // ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible), ::ffff:0:a.b.c.d (translated),
            // 64:ff9b::/96 (NAT64) and 64:ff9b:1::/48 (local NAT64): the IPv4 address decides.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            if segments[..6] == [0, 0, 0, 0, 0, 0]
                || segments[..6] == [0, 0, 0, 0, 0xffff, 0]
                || segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
            {
                return !v6.is_unspecified()
                    && !v6.is_loopback()
                    && is_public_v4(embedded(segments[6], segments[7]));
            }
            if segments[..3] == [0x64, 0xff9b, 1] {
                return false;
            }
            // 2002::/16 (6to4) carries an IPv4 address in its second and third segments.
            if segments[0] == 0x2002 {
                return is_public_v4(embedded(segments[1], segments[2]));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                // documentation 2001:db8::/32 and site-local fec0::/10
                || (segments[0] == 0x2001 && segments[1] == 0x0db8)
                || (segments[0] & 0xffc0) == 0xfec0)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT), 100.64/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 192 && b == 88 && ip.octets()[2] == 99) // 6to4 relay anycast
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// Why `host` (a host name or a literal address, IPv6 with or without brackets) is not a
/// public host, or `None` if nothing about the text says so. Names are judged again once
/// resolved; this catches literal addresses and the names that always mean this machine.
pub fn non_public_host(host: &str) -> Option<String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    // The WHATWG host parser reads the numeric spellings resolvers also accept as IPv4
    // addresses (`2130706433`, `0x7f.1`, `127.1`, `0177.0.0.1`) as the address they mean.
    let literal = match bare.parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => match url::Host::parse(bare) {
            Ok(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Ok(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            _ => None,
        },
    };
    if let Some(ip) = literal {
        return (!is_public_ip(ip)).then(|| format!("{bare} is not a public internet address"));
    }
    let name = bare.trim_end_matches('.').to_ascii_lowercase();
    let local = name == "localhost"
        || name.ends_with(".localhost")
        || name.ends_with(".internal")
        || name.ends_with(".local");
    local.then(|| format!("{bare} names a local or internal host"))
}

/// The first public address among `addresses`, or why there is none.
pub fn first_public(
    host: &str,
    addresses: impl IntoIterator<Item = IpAddr>,
) -> Result<IpAddr, String> {
    let mut seen = Vec::new();
    for ip in addresses {
        if is_public_ip(ip) {
            return Ok(ip);
        }
        seen.push(ip.to_string());
    }
    if seen.is_empty() {
        Err(format!("{host} did not resolve to any address"))
    } else {
        Err(format!(
            "{host} resolves only to addresses that are not on the public internet ({})",
            seen.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public_ip(s.parse().unwrap())
    }

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_not_public() {
        for s in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.5",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.10",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
            "::127.0.0.1",
            "2001:db8::1",
            "ff02::1",
            "::ffff:0:7f00:1",   // IPv4-translated 127.0.0.1
            "64:ff9b:1::a00:1",  // local-use NAT64
            "2002:a9fe:a9fe::1", // 6to4 of 169.254.169.254
            "192.88.99.1",
        ] {
            assert!(!public(s), "{s} must not count as public");
        }
    }

    #[test]
    fn internet_addresses_are_public() {
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "192.0.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1", // 6to4 of 8.8.8.8
        ] {
            assert!(public(s), "{s} must count as public");
        }
    }

    #[test]
    fn local_names_and_literals_are_named_as_such() {
        assert!(non_public_host("localhost").is_some());
        assert!(non_public_host("LOCALHOST.").is_some());
        assert!(non_public_host("metadata.google.internal").is_some());
        assert!(non_public_host("[::1]").is_some());
        assert!(non_public_host("127.0.0.1").is_some());
        // Numeric spellings a resolver reads as 127.0.0.1 or 10.0.0.1.
        for spelled in [
            "2130706433",
            "0x7f.1",
            "127.1",
            "0177.0.0.1",
            "0x7f000001",
            "10.1",
        ] {
            assert!(non_public_host(spelled).is_some(), "{spelled}");
        }
        assert_eq!(non_public_host("134744072"), None); // 8.8.8.8
        assert_eq!(non_public_host("smtp.example.com"), None);
        assert_eq!(non_public_host("8.8.8.8"), None);
    }

    #[test]
    fn the_first_public_address_is_chosen_and_an_all_private_answer_is_refused() {
        let ips: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "8.8.4.4".parse().unwrap()];
        assert_eq!(first_public("h", ips).unwrap().to_string(), "8.8.4.4");
        let err = first_public("h", vec!["10.0.0.1".parse().unwrap()]).unwrap_err();
        assert!(err.contains("10.0.0.1"), "{err}");
        assert!(first_public("h", Vec::new()).is_err());
    }
}
