//! The module graph of `src/` is the one `docs/ARCHITECTURE.md` draws:
//! every `crate::` path in non-test code goes from a module to one it may
//! use, and the allowed directions have no cycle. A new import that goes
//! upwards (a repository reaching into services, `web` into `app`, config
//! into the database) fails here with the file that made it.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Each top-level module and the modules it may import. The order is the
/// layering, bottom first; `lib` and `main` may use anything.
const ALLOWED: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("config", &["domain"]),
    ("telemetry", &["config"]),
    ("repositories", &["domain"]),
    ("metrics", &["repositories"]),
    ("crypto", &["config", "metrics"]),
    ("db", &["config", "repositories"]),
    ("mail", &["config", "domain"]),
    (
        "services",
        &[
            "config",
            "crypto",
            "domain",
            "mail",
            "metrics",
            "repositories",
        ],
    ),
    ("state", &["config", "db", "services"]),
    ("client", &["services"]),
    ("web", &["client", "config", "crypto", "domain", "services"]),
    (
        "api",
        &["client", "config", "domain", "services", "state", "web"],
    ),
    (
        "app",
        &["client", "config", "domain", "services", "state", "web"],
    ),
    (
        "startup",
        &[
            "api",
            "app",
            "client",
            "config",
            "db",
            "domain",
            "metrics",
            "services",
            "state",
            "telemetry",
            "web",
        ],
    ),
    (
        "cli",
        &[
            "config",
            "db",
            "domain",
            "services",
            "startup",
            "state",
            "telemetry",
        ],
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its unit tests (a trailing `#[cfg(test)]`
/// module, or a file that is a test module itself).
fn production_code(path: &Path, text: &str) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    match text.find("#[cfg(test)]\nmod ") {
        Some(at) => text[..at].to_owned(),
        None => text.to_owned(),
    }
}

/// The top-level modules a piece of code names through `crate::`,
/// including each first name of a `use crate::{a, b::c}` group.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        // `leptos_auth::crate::` cannot occur; skip `$crate::` in macros.
        if code[..at].ends_with('$') || code[..at].ends_with(|c: char| c.is_alphanumeric()) {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut start_of_item = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start_of_item = true,
                    c if c.is_whitespace() => {}
                    _ if start_of_item && depth == 0 => {
                        let name = ident(&group[i..]);
                        if !name.is_empty() && name != "self" {
                            found.insert(name);
                        }
                        start_of_item = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn every_import_goes_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(module, deps)| (*module, deps.iter().copied().collect()))
        .collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut seen_modules = BTreeSet::new();
    for path in &files {
        let relative = path.strip_prefix(&src).expect("under src");
        let module = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs").to_owned())
            .expect("module name");
        if module == "lib" || module == "main" {
            continue;
        }
        seen_modules.insert(module.clone());
        let Some(may_use) = allowed.get(module.as_str()) else {
            violations.push(format!(
                "{}: module `{module}` is not in the layering table",
                relative.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(path).expect("read file");
        for used in crate_paths(&production_code(path, &text)) {
            if used != module
                && allowed.contains_key(used.as_str())
                && !may_use.contains(used.as_str())
            {
                violations.push(format!(
                    "{}: `{module}` imports `{used}`, which it may not",
                    relative.display()
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    // The table names real modules only, and lists each below its users.
    for (position, (module, deps)) in ALLOWED.iter().enumerate() {
        assert!(
            seen_modules.contains(*module),
            "no module `{module}` in src/"
        );
        for dep in *deps {
            let below = ALLOWED[..position].iter().any(|(m, _)| m == dep);
            assert!(
                below,
                "`{module}` may use `{dep}`, which is not below it: a cycle"
            );
        }
    }
}

#[test]
fn the_import_reader_sees_grouped_and_plain_paths() {
    let code = "use crate::{\n    config::Config,\n    services::{Actor, ServiceError},\n    state::AppState,\n};\nlet x = crate::domain::Email::parse(a);\n";
    let found: Vec<String> = crate_paths(code).into_iter().collect();
    assert_eq!(found, ["config", "domain", "services", "state"]);
    // A violation is reported: `repositories` importing `services`.
    let upward = crate_paths("use crate::services::Actor;");
    assert!(upward.contains("services"));
}
