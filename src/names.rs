//! Instance names as the verbs take them: patterns with `*` and `?`
//! (`keepup reload 'api-*'`), and the natural order names are shown in
//! (`api-2` before `api-10`). Pure functions.

use std::cmp::Ordering;

/// Whether `name` matches `pattern`: `*` is any run of characters, `?`
/// one character, everything else itself.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // The classic two-pointer match with one backtrack point: linear enough
    // for names of at most 64 characters.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

pub fn is_pattern(text: &str) -> bool {
    text.contains(['*', '?'])
}

/// Natural order: runs of digits compare as numbers.
pub fn natural(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                let o = na.len().cmp(&nb.len()).then(na.cmp(nb));
                if o != Ordering::Equal {
                    return o;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let i = d.iter().position(|&c| c != b'0').unwrap_or(d.len());
    &d[i..]
}

/// Expands patterns against `known` names: each pattern becomes the names
/// it matches (in natural order), a plain name stays as it is. `Err` names
/// the first pattern that matches nothing.
pub fn expand(wanted: &[String], known: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for w in wanted {
        if !is_pattern(w) {
            if !out.contains(w) {
                out.push(w.clone());
            }
            continue;
        }
        let mut hits: Vec<&String> = known.iter().filter(|k| glob(w, k)).collect();
        if hits.is_empty() {
            return Err(w.clone());
        }
        hits.sort_by(|a, b| natural(a, b));
        for h in hits {
            if !out.contains(h) {
                out.push(h.clone());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let t = [
            ("api-*", "api-1", true),
            ("api-*", "api-", true),
            ("api-*", "api", false),
            ("api-?", "api-1", true),
            ("api-?", "api-10", false),
            ("*", "x", true),
            ("*-worker", "mail-worker", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("**", "", true),
        ];
        for (p, n, want) in t {
            assert_eq!(glob(p, n), want, "{p} ~ {n}");
        }
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["api-10", "api-2", "api-1", "db", "api-02x", "api-2x"];
        v.sort_by(|a, b| natural(a, b));
        assert_eq!(v, ["api-1", "api-2", "api-02x", "api-2x", "api-10", "db"]);
    }

    #[test]
    fn expansion() {
        let known: Vec<String> = ["api-10", "api-2", "api-1", "db"]
            .map(String::from)
            .to_vec();
        let e = |w: &[&str]| expand(&w.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &known);
        assert_eq!(e(&["api-*"]).unwrap(), ["api-1", "api-2", "api-10"]);
        assert_eq!(e(&["db", "api-?"]).unwrap(), ["db", "api-1", "api-2"]);
        assert_eq!(
            e(&["nope"]).unwrap(),
            ["nope"],
            "a plain name is kept as it is"
        );
        assert_eq!(e(&["web-*"]).unwrap_err(), "web-*");
    }
}
