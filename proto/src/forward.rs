//! Forwarding methods by name, for rvsadm's output: the names rvsd and the configuration file
//! accept for a dest's method, the `Forward` column ipvsadm prints, and the switch `-S`
//! writes. (rvsd itself parses the names into its scheduler model's `ForwardMode`, which
//! takes the same names.)

/// A dest's forwarding method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ForwardName {
    /// NAT (masquerading, `-m`).
    Nat,
    /// Direct routing (gatewaying, `-g`).
    Dr,
    /// IPIP tunnelling (`-i`).
    Tun,
    /// Full NAT (`--fullnat`).
    FullNat,
}

impl ForwardName {
    /// Every name of every method, matched in any case: `nat`/`masq`, `dr`/`route`/`gate`,
    /// `tun`/`tunnel`/`ipip`, `fullnat`/`fnat`.
    pub const ALIASES: [(&'static str, ForwardName); 10] = [
        ("nat", ForwardName::Nat),
        ("masq", ForwardName::Nat),
        ("dr", ForwardName::Dr),
        ("route", ForwardName::Dr),
        ("gate", ForwardName::Dr),
        ("tun", ForwardName::Tun),
        ("tunnel", ForwardName::Tun),
        ("ipip", ForwardName::Tun),
        ("fullnat", ForwardName::FullNat),
        ("fnat", ForwardName::FullNat),
    ];

    /// The method `name` names (any alias, any case), or None.
    pub fn parse(name: &str) -> Option<ForwardName> {
        ForwardName::ALIASES
            .iter()
            .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
            .map(|&(_, method)| method)
    }

    /// ipvsadm's `Forward` column: `Masq`, `Route`, `Tunnel`, `FullNat`.
    pub fn column(self) -> &'static str {
        match self {
            ForwardName::Nat => "Masq",
            ForwardName::Dr => "Route",
            ForwardName::Tun => "Tunnel",
            ForwardName::FullNat => "FullNat",
        }
    }

    /// The rvsadm switch that selects it: `-m`, `-g`, `-i`, `--fullnat`.
    pub fn switch(self) -> &'static str {
        match self {
            ForwardName::Nat => "-m",
            ForwardName::Dr => "-g",
            ForwardName::Tun => "-i",
            ForwardName::FullNat => "--fullnat",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alias_in_any_case_and_nothing_else() {
        for (alias, method) in ForwardName::ALIASES {
            assert_eq!(ForwardName::parse(alias), Some(method), "{alias}");
            assert_eq!(
                ForwardName::parse(&alias.to_ascii_uppercase()),
                Some(method)
            );
        }
        for column in ["Masq", "Route", "Tunnel", "FullNat"] {
            let m = ForwardName::parse(column).expect("a listing's column reads back");
            assert_eq!(m.column(), column);
        }
        assert_eq!(ForwardName::parse("snat"), None);
        assert_eq!(ForwardName::parse("local"), None);
        assert_eq!(ForwardName::FullNat.switch(), "--fullnat");
    }
}
