//! `--user USER[:GROUP]` resolved from `/etc/passwd` and `/etc/group`,
//! once, before the first start (SPEC 10): no libc name lookup ever runs
//! between fork and exec, and a static binary needs no NSS. The parsers
//! are pure; `resolve` reads the two files.

/// Who the child runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// As given (`node`, `1000:1000`), for `status` and messages.
    pub spec: String,
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the user's (every group that lists it, and
    /// its primary group), or just GROUP when `:GROUP` is given.
    pub groups: Vec<u32>,
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

fn group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// Resolves `spec` against the texts of `/etc/passwd` and `/etc/group`.
pub fn resolve_in(spec: &str, passwd_text: &str, group_text: &str) -> Result<User, String> {
    let (who, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if who.is_empty() || grp == Some("") {
        return Err("expected USER or USER:GROUP".into());
    }
    let users = passwd(passwd_text);
    let groups = group(group_text);
    let entry = match who.parse::<u32>() {
        Ok(uid) => users.iter().find(|e| e.uid == uid),
        Err(_) => users.iter().find(|e| e.name == who),
    };
    let group_of = |g: &str| -> Result<u32, String> {
        match g.parse::<u32>() {
            Ok(gid) => Ok(gid),
            Err(_) => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| format!("no group '{g}' in /etc/group")),
        }
    };
    match (entry, grp) {
        (Some(e), None) => {
            let mut gids: Vec<u32> = groups
                .iter()
                .filter(|g| g.members.contains(&e.name))
                .map(|g| g.gid)
                .collect();
            if !gids.contains(&e.gid) {
                gids.insert(0, e.gid);
            }
            Ok(User {
                spec: spec.to_string(),
                name: e.name.clone(),
                uid: e.uid,
                gid: e.gid,
                groups: gids,
                home: e.home.clone(),
            })
        }
        (Some(e), Some(g)) => {
            let gid = group_of(g)?;
            Ok(User {
                spec: spec.to_string(),
                name: e.name.clone(),
                uid: e.uid,
                gid,
                groups: vec![gid],
                home: e.home.clone(),
            })
        }
        // A numeric uid with no entry works with an explicit group, as in
        // `docker run --user 1234:1234`.
        (None, Some(g)) => match who.parse::<u32>() {
            Ok(uid) => {
                let gid = group_of(g)?;
                Ok(User {
                    spec: spec.to_string(),
                    name: uid.to_string(),
                    uid,
                    gid,
                    groups: vec![gid],
                    home: "/".into(),
                })
            }
            Err(_) => Err(format!("no user '{who}' in /etc/passwd")),
        },
        (None, None) => match who.parse::<u32>() {
            Ok(_) => Err(format!(
                "uid {who} has no entry in /etc/passwd: give its group too ({who}:GID)"
            )),
            Err(_) => Err(format!("no user '{who}' in /etc/passwd")),
        },
    }
}

/// Resolves `spec` from this machine's files, and checks that keepup may
/// become that user at all.
pub fn resolve(spec: &str) -> Result<User, String> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let user = resolve_in(spec, &read("/etc/passwd"), &read("/etc/group"))?;
    // SAFETY: geteuid and getegid have no arguments.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if euid != 0 && (user.uid != euid || user.gid != egid) {
        return Err(format!(
            "keepup runs as uid {euid}, and only root can run a child as another user"
        ));
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        # a comment\n\
        node:x:1000:1000::/home/node:/bin/sh\n\
        app:x:1001:1001:App:/srv/app:/usr/sbin/nologin\n\
        broken line\n";
    const GROUP: &str = "root:x:0:\n\
        node:x:1000:\n\
        app:x:1001:\n\
        docker:x:998:node,app\n\
        audio:x:29:node\n";

    #[test]
    fn names_and_numbers() {
        let u = resolve_in("node", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 1000, "/home/node"));
        assert_eq!(u.groups, vec![1000, 998, 29]);
        let u = resolve_in("1001", PASSWD, GROUP).unwrap();
        assert_eq!((u.name.as_str(), u.gid), ("app", 1001));
        assert_eq!(u.groups, vec![1001, 998]);
        let u = resolve_in("node:docker", PASSWD, GROUP).unwrap();
        assert_eq!((u.gid, u.groups.clone()), (998, vec![998]));
        let u = resolve_in("app:50", PASSWD, GROUP).unwrap();
        assert_eq!((u.gid, u.groups.clone()), (50, vec![50]));
        let u = resolve_in("4242:4242", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4242, 4242, "/"));
    }

    #[test]
    fn unknown() {
        let e = |s: &str| resolve_in(s, PASSWD, GROUP).unwrap_err();
        assert_eq!(e("nobody2"), "no user 'nobody2' in /etc/passwd");
        assert_eq!(e("node:wheel"), "no group 'wheel' in /etc/group");
        assert_eq!(
            e("4242"),
            "uid 4242 has no entry in /etc/passwd: give its group too (4242:GID)"
        );
        assert_eq!(e(":x"), "expected USER or USER:GROUP");
        assert_eq!(e("node:"), "expected USER or USER:GROUP");
    }
}
