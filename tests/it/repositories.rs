//! The repository behaviour suite: the same assertions against the SQLite and
//! the PostgreSQL implementation, so the two cannot drift apart.

use crate::common::{Backend, TestApp};
use chrono::{Duration, Utc};
use leptos_auth::{
    domain::{AuditEventType, Email, Role},
    repositories::{
        AuditFilter, CeremonyPurpose, ChallengePurpose, EmailTokenProblem, EmailTokenPurpose,
        NewAuditEvent, NewCeremony, NewChallenge, NewEmailToken, NewOutboxMessage, NewPasskey,
        NewSession, NewUser, OutboxRow, RepoError, Repositories, RevokeSessions, Rotation,
        RotationRequest, ThrottleKind, UsedEmailToken, UserChanges, UserFilter,
    },
};
use serde_json::json;

fn repos(app: &TestApp) -> Repositories {
    app.state.services.repositories.clone()
}

fn email(s: &str) -> Email {
    Email::parse(s).expect("valid email")
}

async fn create_user(repos: &Repositories, address: &str, role: Role, active: bool) -> i64 {
    let address = email(address);
    repos
        .users
        .create(NewUser {
            email: &address,
            password_hash: "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            role,
            is_active: active,
            email_verified: false,
            now: Utc::now(),
        })
        .await
        .expect("create user")
        .id
}

async fn new_session(repos: &Repositories, user_id: i64, hash: &str) -> i64 {
    let now = Utc::now();
    repos
        .sessions
        .create(NewSession {
            user_id,
            refresh_token_hash: hash,
            now,
            expires_at: now + Duration::days(7),
            max_expires_at: now + Duration::days(30),
            user_agent: Some("test-agent"),
            ip: Some("192.0.2.1"),
        })
        .await
        .expect("create session")
}

/// A rotation without reuse grace.
fn strict<'a>(
    presented_hash: &'a str,
    successor_hash: &'a str,
    now: chrono::DateTime<Utc>,
    new_expires_at: chrono::DateTime<Utc>,
) -> RotationRequest<'a> {
    RotationRequest {
        presented_hash,
        successor_hash,
        now,
        new_expires_at,
        grace_since: None,
    }
}

/// A rotation at `now` whose grace began `grace` seconds before.
fn with_grace<'a>(
    presented_hash: &'a str,
    successor_hash: &'a str,
    now: chrono::DateTime<Utc>,
    grace: i64,
) -> RotationRequest<'a> {
    RotationRequest {
        grace_since: Some(now - Duration::seconds(grace)),
        ..strict(presented_hash, successor_hash, now, now + Duration::days(7))
    }
}

async fn users_round_trip_with_their_fields(app: TestApp) {
    let repos = repos(&app);
    let before = Utc::now() - Duration::seconds(1);
    let id = create_user(&repos, "Round@Trip.io", Role::Admin, false).await;
    let user = repos
        .users
        .find_by_id(id)
        .await
        .expect("query")
        .expect("found");
    assert_eq!(user.email, "round@trip.io");
    assert_eq!(user.role, Role::Admin);
    assert!(!user.is_active);
    assert!(user.created_at > before && user.created_at <= Utc::now());
    assert_eq!(user.created_at, user.updated_at);
    let by_email = repos
        .users
        .find_by_email(&email("ROUND@trip.io"))
        .await
        .expect("query")
        .expect("found");
    assert_eq!(by_email.id, id);
    assert!(repos
        .users
        .find_by_id(id + 1000)
        .await
        .expect("query")
        .is_none());
    assert!(repos
        .users
        .find_by_email(&email("other@trip.io"))
        .await
        .expect("query")
        .is_none());
}

async fn a_second_user_with_the_same_email_is_email_taken(app: TestApp) {
    let repos = repos(&app);
    create_user(&repos, "same@example.com", Role::Regular, true).await;
    let again = email("SAME@example.com");
    let result = repos
        .users
        .create(NewUser {
            email: &again,
            password_hash: "x",
            role: Role::Regular,
            is_active: true,
            email_verified: false,
            now: Utc::now(),
        })
        .await;
    assert!(matches!(result, Err(RepoError::EmailTaken)), "{result:?}");
}

async fn concurrent_creates_of_one_email_make_exactly_one_user(app: TestApp) {
    let repos = repos(&app);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let repos = repos.clone();
        tasks.push(tokio::spawn(async move {
            let address = email("race@example.com");
            repos
                .users
                .create(NewUser {
                    email: &address,
                    password_hash: "x",
                    role: Role::Regular,
                    is_active: true,
                    email_verified: false,
                    now: Utc::now(),
                })
                .await
        }));
    }
    let mut created = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => created += 1,
            Err(RepoError::EmailTaken) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(created, 1);
    let (_, total) = repos
        .users
        .list(&UserFilter::default(), 0, 100)
        .await
        .expect("list");
    assert_eq!(total, 1);
}

async fn listing_filters_pages_and_counts(app: TestApp) {
    let repos = repos(&app);
    for i in 0..5 {
        create_user(
            &repos,
            &format!("user{i}@alpha.io"),
            Role::Regular,
            i % 2 == 0,
        )
        .await;
    }
    create_user(&repos, "boss@beta.io", Role::Admin, true).await;
    let (page, total) = repos
        .users
        .list(&UserFilter::default(), 1, 2)
        .await
        .expect("list");
    assert_eq!(total, 6);
    assert_eq!(page.len(), 2);
    assert!(page[0].id < page[1].id);
    let filter = UserFilter {
        email_contains: Some("ALPHA".into()),
        role: Some(Role::Regular),
        is_active: Some(true),
    };
    let (page, total) = repos.users.list(&filter, 0, 100).await.expect("list");
    assert_eq!(total, 3);
    assert!(page
        .iter()
        .all(|u| u.is_active && u.email.contains("alpha")));
    let (_, admins) = repos
        .users
        .list(
            &UserFilter {
                role: Some(Role::Admin),
                ..UserFilter::default()
            },
            0,
            100,
        )
        .await
        .expect("list");
    assert_eq!(admins, 1);
}

/// The admin search of `filter` over all pages of `per_page`: the emails in
/// order and the total of every page (each page must report the same one).
async fn search_all_pages(
    repos: &Repositories,
    filter: &UserFilter,
    per_page: i64,
) -> (Vec<String>, i64) {
    let mut emails = Vec::new();
    let mut total = None;
    let mut last_id = 0;
    loop {
        let (page, page_total) = repos
            .users
            .list(filter, emails.len() as i64, per_page)
            .await
            .expect("list");
        assert_eq!(*total.get_or_insert(page_total), page_total, "{filter:?}");
        for user in &page {
            assert!(user.id > last_id, "ordered by id: {filter:?}");
            last_id = user.id;
        }
        let full = page.len() as i64 == per_page;
        emails.extend(page.into_iter().map(|u| u.email));
        if !full {
            break;
        }
    }
    (emails, total.unwrap_or(0))
}

fn contains(needle: &str) -> UserFilter {
    UserFilter {
        email_contains: Some(needle.into()),
        ..UserFilter::default()
    }
}

/// The SQLite search index (an FTS5 table fed by triggers) must list exactly
/// the stored emails: a stale or missing entry fails the check. PostgreSQL's
/// index is maintained by the server.
async fn assert_search_index_in_sync(app: &TestApp) {
    if app.backend == Backend::Sqlite {
        app.exec(
            "INSERT INTO users_email_fts (users_email_fts, rank) VALUES ('integrity-check', 1)",
        )
        .await;
    }
}

/// Every needle finds exactly the emails that contain it, in any letter case,
/// wherever it is in the address, whether it is long enough for the trigram
/// index (3+ characters) or not.
async fn search_finds_substrings_anywhere_ignoring_case(app: TestApp) {
    let repos = repos(&app);
    let addresses = [
        "alice.smith@alpha.io",
        "bob.jones@beta.io",
        "Carol@Alphabet.org",
        "dave@zeta.net",
        "Émile.Äbc@ünï.fr",
        "smithson@gamma.io",
    ];
    let mut stored = Vec::new();
    for address in addresses {
        create_user(&repos, address, Role::Regular, true).await;
        stored.push(email(address).as_str().to_owned());
    }
    assert_search_index_in_sync(&app).await;
    let expected = |needle: &str| -> Vec<String> {
        let needle = needle.to_lowercase();
        stored
            .iter()
            .filter(|e| e.contains(&needle))
            .cloned()
            .collect()
    };
    for (needle, matches) in [
        // Start, middle, end of the address, and the whole of it.
        ("alice", 1),
        ("smith", 2),
        ("h@alp", 1),
        ("lpha", 2),
        (".io", 3),
        ("pha.io", 1),
        ("bob.jones@beta.io", 1),
        // Letter case, ASCII and not.
        ("ALPHA", 2),
        ("Smith@ALPHA.IO", 1),
        ("CAROL@", 1),
        ("ÉMILE.ÄBC", 1),
        ("ünï", 1),
        // Short needles (no trigram): the plain scan.
        ("z", 1),
        ("a", 5),
        ("io", 3),
        ("É", 1),
        // Absent.
        ("xyz", 0),
        ("alice.smith@alpha.io.", 0),
        ("q", 0),
    ] {
        let (found, total) = search_all_pages(&repos, &contains(needle), 2).await;
        assert_eq!(found, expected(needle), "{needle}");
        assert_eq!(found.len(), matches, "{needle}");
        assert_eq!(total, matches as i64, "{needle}");
    }
}

/// `%`, `_` and `\` are LIKE wildcards and the escape, `"`, `*`, `:` and
/// words like `OR` are FTS5 query syntax: in a needle they are all literal.
async fn search_takes_wildcards_and_query_syntax_literally(app: TestApp) {
    let repos = repos(&app);
    let addresses = [
        "100%pure@x.io",
        "100xpure@x.io",
        "under_score@x.io",
        "underxscore@x.io",
        "back\\slash@x.io",
        "backslash@x.io",
        "quo\"ted@x.io",
        "star*name@x.io",
        "col:on@x.io",
        "fish^or@x.io",
        "plain@x.io",
    ];
    let mut stored = Vec::new();
    for address in addresses {
        create_user(&repos, address, Role::Regular, true).await;
        stored.push(email(address).as_str().to_owned());
    }
    assert_search_index_in_sync(&app).await;
    for (needle, matches) in [
        ("%", 1),
        ("_", 1),
        ("\\", 1),
        ("0%p", 1),
        ("100%pure", 1),
        ("r_s", 1),
        ("under_score@", 1),
        ("k\\s", 1),
        ("back\\slash", 1),
        ("%%", 0),
        ("a%e", 0),
        ("\"", 1),
        ("o\"t", 1),
        ("quo\"ted", 1),
        ("\"\"\"", 0),
        ("r*n", 1),
        ("*", 1),
        ("l:o", 1),
        ("email:plain", 0),
        ("h^o", 1),
        ("\" OR \"", 0),
        ("plain\" OR \"x", 0),
        ("NEAR(", 0),
        ("x.io", addresses.len()),
    ] {
        let (found, total) = search_all_pages(&repos, &contains(needle), 3).await;
        let expected: Vec<String> = stored
            .iter()
            .filter(|e| e.contains(&needle.to_lowercase()))
            .cloned()
            .collect();
        assert_eq!(found, expected, "{needle}");
        assert_eq!(found.len(), matches, "{needle}");
        assert_eq!(total, matches as i64, "{needle}");
    }
}

/// The search combines with the role and status filters, and pages of any
/// size add up to the matches, each page reporting the same total.
async fn search_combines_with_role_status_and_paging(app: TestApp) {
    let repos = repos(&app);
    let mut stored = Vec::new();
    for i in 0..30 {
        let role = if i % 5 == 0 {
            Role::Admin
        } else {
            Role::Regular
        };
        let active = i % 3 != 0;
        let address = format!("p{i:02}@page.io");
        create_user(&repos, &address, role, active).await;
        stored.push((address, role, active));
        let decoy = format!("page{i:02}@else.org");
        create_user(&repos, &decoy, role, active).await;
        stored.push((decoy, role, active));
    }
    assert_search_index_in_sync(&app).await;
    for needle in [
        "page.io", "@PAGE.", "p1", "p2", "e.o", "else.org", "nowhere",
    ] {
        for role in [None, Some(Role::Admin), Some(Role::Regular)] {
            for is_active in [None, Some(true), Some(false)] {
                let filter = UserFilter {
                    email_contains: Some(needle.into()),
                    role,
                    is_active,
                };
                let expected: Vec<String> = stored
                    .iter()
                    .filter(|(e, r, a)| {
                        e.contains(&needle.to_lowercase())
                            && role.is_none_or(|role| role == *r)
                            && is_active.is_none_or(|active| active == *a)
                    })
                    .map(|(e, _, _)| e.clone())
                    .collect();
                for per_page in [1, 4, 100] {
                    let (found, total) = search_all_pages(&repos, &filter, per_page).await;
                    assert_eq!(found, expected, "{filter:?} by {per_page}");
                    assert_eq!(total, expected.len() as i64, "{filter:?}");
                }
            }
        }
    }
    // A page past the end is empty but still counts the matches.
    let (page, total) = repos
        .users
        .list(&contains("page.io"), 1000, 10)
        .await
        .expect("list");
    assert!(page.is_empty());
    assert_eq!(total, 30);
}

/// An email change moves the user in the search (the new address is found,
/// the old one no longer), a deleted user leaves it, and other changes
/// keep it where it is.
async fn search_follows_email_changes_and_deletions(app: TestApp) {
    let repos = repos(&app);
    let mover = create_user(&repos, "before.change@sync.io", Role::Regular, true).await;
    let keeper = create_user(&repos, "keeper@sync.io", Role::Regular, true).await;
    let doomed = create_user(&repos, "doomed@sync.io", Role::Regular, true).await;
    let found = |needle: &'static str| {
        let repos = repos.clone();
        async move {
            let (users, total) = repos
                .users
                .list(&contains(needle), 0, 100)
                .await
                .expect("list");
            assert_eq!(users.len() as i64, total, "{needle}");
            users.into_iter().map(|u| u.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(found("before.change").await, vec![mover]);
    assert_eq!(found("sync.io").await, vec![mover, keeper, doomed]);

    let now = Utc::now();
    let changes = UserChanges {
        email: Some(email("After.Move@elsewhere.net")),
        ..UserChanges::default()
    };
    repos
        .users
        .update(mover, &changes, RevokeSessions::None, now)
        .await
        .expect("update");
    assert_search_index_in_sync(&app).await;
    assert_eq!(found("before.change").await, Vec::<i64>::new());
    assert_eq!(found("ore.cha").await, Vec::<i64>::new());
    assert_eq!(found("after.move").await, vec![mover]);
    assert_eq!(found("AFTER.MOVE@ELSEWHERE.NET").await, vec![mover]);
    assert_eq!(found("sync.io").await, vec![keeper, doomed]);
    assert_eq!(found("where.n").await, vec![mover]);

    // Changes that keep the address keep the user findable.
    let promote = UserChanges {
        role: Some(Role::Admin),
        is_active: Some(false),
        password_hash: Some("other-hash".into()),
        ..UserChanges::default()
    };
    repos
        .users
        .update(keeper, &promote, RevokeSessions::None, now)
        .await
        .expect("update");
    repos
        .users
        .set_password_hash(keeper, "third-hash", now)
        .await
        .expect("rehash");
    assert!(repos
        .users
        .mark_email_verified(keeper, "keeper@sync.io", now)
        .await
        .expect("verify"));
    assert_search_index_in_sync(&app).await;
    assert_eq!(found("keeper@").await, vec![keeper]);

    // A refused change (the address is taken) leaves the index as it was.
    let clash = UserChanges {
        email: Some(email("after.move@elsewhere.net")),
        ..UserChanges::default()
    };
    let refused = repos
        .users
        .update(keeper, &clash, RevokeSessions::None, now)
        .await;
    assert!(matches!(refused, Err(RepoError::EmailTaken)), "{refused:?}");
    assert_search_index_in_sync(&app).await;
    assert_eq!(found("keeper@").await, vec![keeper]);
    assert_eq!(found("after.move").await, vec![mover]);

    // Moving back to an address used before finds it again.
    let back = UserChanges {
        email: Some(email("before.change@sync.io")),
        ..UserChanges::default()
    };
    repos
        .users
        .update(mover, &back, RevokeSessions::None, now)
        .await
        .expect("update");
    assert_eq!(found("before.change").await, vec![mover]);
    assert_eq!(found("after.move").await, Vec::<i64>::new());

    repos.users.delete(doomed).await.expect("delete");
    assert_search_index_in_sync(&app).await;
    assert_eq!(found("doomed").await, Vec::<i64>::new());
    assert_eq!(found("sync.io").await, vec![mover, keeper]);
    // A new user with the deleted address is found, once.
    let reborn = create_user(&repos, "doomed@sync.io", Role::Regular, true).await;
    assert_search_index_in_sync(&app).await;
    assert_eq!(found("doomed").await, vec![reborn]);
    assert_eq!(found("sync.io").await, vec![mover, keeper, reborn]);
}

/// A needle most users contain (more than the SQLite trigram index is worth
/// asking, which then scans) finds, counts and pages exactly like a rare one.
async fn search_for_a_needle_most_users_contain(app: TestApp) {
    let repos = repos(&app);
    create_user(&repos, "first@other.io", Role::Admin, true).await;
    app.exec(
        "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 1500) \
         INSERT INTO users (email, password_hash, role, is_active, created_at, updated_at) \
         SELECT 'bulk' || n || '@many.io', 'x', 'regular', n % 3 <> 0, \
         '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z' FROM g",
    )
    .await;
    create_user(&repos, "last@many.io", Role::Regular, false).await;
    assert_search_index_in_sync(&app).await;

    let (page, total) = repos
        .users
        .list(&contains("many.io"), 0, 100)
        .await
        .expect("list");
    assert_eq!(total, 1501);
    assert_eq!(page.len(), 100);
    assert_eq!(page[0].email, "bulk1@many.io");
    let (page, total) = repos
        .users
        .list(&contains("MANY.IO"), 1450, 100)
        .await
        .expect("list");
    assert_eq!(total, 1501);
    let emails: Vec<&str> = page.iter().map(|u| u.email.as_str()).collect();
    assert_eq!(emails.len(), 51);
    assert_eq!(emails[0], "bulk1451@many.io");
    assert_eq!(emails[49], "bulk1500@many.io");
    assert_eq!(emails[50], "last@many.io");

    let inactive = UserFilter {
        is_active: Some(false),
        ..contains("@many")
    };
    let (_, total) = repos.users.list(&inactive, 0, 10).await.expect("list");
    assert_eq!(total, 501, "every third bulk user and the last one");

    // Rarer needles among them.
    let (found, total) = search_all_pages(&repos, &contains("ulk14"), 100).await;
    assert_eq!(total, 111, "bulk14, bulk140-149, bulk1400-1499");
    assert_eq!(found.len(), 111);
    assert!(found.iter().all(|e| e.contains("ulk14")));
    let (found, _) = search_all_pages(&repos, &contains("bulk1234@"), 100).await;
    assert_eq!(found, vec!["bulk1234@many.io"]);
    let (found, _) = search_all_pages(&repos, &contains("other"), 100).await;
    assert_eq!(found, vec!["first@other.io"]);
    let (_, total) = repos.users.list(&contains("m"), 0, 1).await.expect("list");
    assert_eq!(total, 1501);
}

/// Users stored before the search index existed are found through it: the
/// migration that adds it indexes them (and counts them).
async fn users_stored_before_the_search_index_are_found(backend: Backend) {
    use sqlx::migrate::Migrator;
    use std::path::Path;

    let dir = tempfile::tempdir().expect("temp dir");
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join(match backend {
        Backend::Sqlite => "migrations/sqlite",
        Backend::Postgres => "migrations/postgres",
    });
    // The schema as it was before the search index (migrations 0001 to 0003).
    let before = dir.path().join("before");
    std::fs::create_dir(&before).expect("folder");
    for entry in std::fs::read_dir(&folder).expect("migrations") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if ["0001_", "0002_", "0003_"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            std::fs::copy(&path, before.join(&name)).expect("copy");
        }
    }
    let earlier = Migrator::new(before.as_path()).await.expect("migrations");
    let all = Migrator::new(folder.as_path()).await.expect("migrations");
    let seed = "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 1200) \
         INSERT INTO users (email, password_hash, role, is_active, created_at, updated_at) \
         SELECT 'old' || n || '@before.io', 'x', 'regular', TRUE, \
         '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z' FROM g";
    let repos = match backend {
        Backend::Sqlite => {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(dir.path().join("old.db"))
                .create_if_missing(true);
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .connect_with(options)
                .await
                .expect("connect");
            earlier.run(&pool).await.expect("migrate to 0003");
            sqlx::query(seed).execute(&pool).await.expect("seed");
            all.run(&pool).await.expect("migrate");
            sqlx::query(
                "INSERT INTO users_email_fts (users_email_fts, rank) VALUES ('integrity-check', 1)",
            )
            .execute(&pool)
            .await
            .expect("the index lists every stored email");
            leptos_auth::repositories::sqlite::SqliteStore::repositories(pool)
        }
        Backend::Postgres => {
            let url = crate::common::pg::fresh_database().await;
            let pool = sqlx::PgPool::connect(&url).await.expect("connect");
            earlier.run(&pool).await.expect("migrate to 0003");
            sqlx::query(seed).execute(&pool).await.expect("seed");
            all.run(&pool).await.expect("migrate");
            leptos_auth::repositories::postgres::PostgresStore::repositories(pool)
        }
    };
    let (_, total) = repos
        .users
        .list(&UserFilter::default(), 0, 10)
        .await
        .expect("list");
    assert_eq!(total, 1200);
    let (found, total) = search_all_pages(&repos, &contains("OLD1199@"), 10).await;
    assert_eq!(found, vec!["old1199@before.io"]);
    assert_eq!(total, 1);
    let (found, total) = search_all_pages(&repos, &contains("d114"), 100).await;
    assert_eq!(total, 11, "old114, old1140-old1149");
    assert!(found.iter().all(|e| e.contains("d114")));
    let (_, total) = repos
        .users
        .list(&contains("before.io"), 0, 10)
        .await
        .expect("list");
    assert_eq!(total, 1200);
    // New users join the index.
    create_user(&repos, "new@after.io", Role::Regular, true).await;
    let (found, _) = search_all_pages(&repos, &contains("w@aft"), 10).await;
    assert_eq!(found, vec!["new@after.io"]);
}

/// The total of the unfiltered list (X-Total-Count) is the number of users
/// after every kind of write: single and concurrent inserts, a refused
/// duplicate, a bulk insert, single and bulk deletes, a rolled back insert,
/// and on PostgreSQL a truncate.
async fn the_unfiltered_total_counts_every_user(app: TestApp) {
    let repos = repos(&app);
    let total = |repos: Repositories| async move {
        repos
            .users
            .list(&UserFilter::default(), 0, 5)
            .await
            .expect("list")
            .1
    };
    assert_eq!(total(repos.clone()).await, 0);
    let first = create_user(&repos, "one@count.io", Role::Admin, true).await;
    create_user(&repos, "two@count.io", Role::Regular, false).await;
    assert_eq!(total(repos.clone()).await, 2);

    let mut tasks = Vec::new();
    for i in 0..20 {
        let repos = repos.clone();
        tasks.push(tokio::spawn(async move {
            create_user(&repos, &format!("many{i}@count.io"), Role::Regular, true).await
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(total(repos.clone()).await, 22);
    let again = email("ONE@count.io");
    let duplicate = repos
        .users
        .create(NewUser {
            email: &again,
            password_hash: "x",
            role: Role::Regular,
            is_active: true,
            email_verified: false,
            now: Utc::now(),
        })
        .await;
    assert!(matches!(duplicate, Err(RepoError::EmailTaken)));
    assert_eq!(total(repos.clone()).await, 22);

    app.exec(
        "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 300) \
         INSERT INTO users (email, password_hash, role, is_active, created_at, updated_at) \
         SELECT 'bulk' || n || '@count.io', 'x', 'regular', TRUE, \
         '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z' FROM g",
    )
    .await;
    assert_eq!(total(repos.clone()).await, 322);
    assert_eq!(app.count("users", "TRUE").await, 322);

    repos.users.delete(first + 1).await.expect("delete");
    assert_eq!(total(repos.clone()).await, 321);
    assert_eq!(
        app.exec("DELETE FROM users WHERE email LIKE 'bulk1%'")
            .await,
        111
    );
    assert_eq!(total(repos.clone()).await, 210);
    // A bulk insert that fails half-way (a duplicate) counts nothing.
    let refused = app
        .try_exec(
            "INSERT INTO users (email, password_hash, role, is_active, created_at, updated_at) VALUES \
             ('fresh@count.io', 'x', 'regular', TRUE, '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z'), \
             ('one@count.io', 'x', 'regular', TRUE, '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z')",
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(total(repos.clone()).await, 210);
    assert_eq!(app.count("users", "TRUE").await, 210);

    if app.backend == Backend::Postgres {
        app.exec("TRUNCATE users CASCADE").await;
    } else {
        assert_eq!(app.exec("DELETE FROM users").await, 210);
    }
    assert_eq!(app.count("users", "TRUE").await, 0);
    assert_eq!(total(repos.clone()).await, 0);
    create_user(&repos, "after@count.io", Role::Regular, true).await;
    assert_eq!(total(repos.clone()).await, 1);
}

async fn updates_apply_only_the_given_fields(app: TestApp) {
    let repos = repos(&app);
    let id = create_user(&repos, "edit@example.com", Role::Regular, true).await;
    let original = repos
        .users
        .find_by_id(id)
        .await
        .expect("query")
        .expect("user");
    let later = Utc::now() + Duration::seconds(5);
    let changes = UserChanges {
        email: Some(email("edited@example.com")),
        ..UserChanges::default()
    };
    let updated = repos
        .users
        .update(id, &changes, RevokeSessions::None, later)
        .await
        .expect("update");
    assert_eq!(updated.email, "edited@example.com");
    assert_eq!(updated.password_hash, original.password_hash);
    assert_eq!(updated.role, Role::Regular);
    assert!(updated.is_active);
    assert_eq!(updated.created_at, original.created_at);
    assert!(updated.updated_at > original.updated_at);
    let missing = repos
        .users
        .update(id + 99, &changes, RevokeSessions::None, later)
        .await;
    assert!(matches!(missing, Err(RepoError::NotFound)), "{missing:?}");
    let other = create_user(&repos, "other@example.com", Role::Regular, true).await;
    let clash = repos
        .users
        .update(other, &changes, RevokeSessions::None, later)
        .await;
    assert!(matches!(clash, Err(RepoError::EmailTaken)), "{clash:?}");
}

/// Asserts that applying `changes` to user `id` (revoking `revoke`) and
/// deleting them are both refused: they are the last active admin.
async fn assert_refused_as_the_last_admin(
    repos: &Repositories,
    id: i64,
    changes: &UserChanges,
    revoke: RevokeSessions,
) {
    let refused = repos.users.update(id, changes, revoke, Utc::now()).await;
    assert!(matches!(refused, Err(RepoError::LastAdmin)), "{refused:?}");
    let refused = repos.users.delete(id).await;
    assert!(matches!(refused, Err(RepoError::LastAdmin)), "{refused:?}");
}

async fn the_last_active_admin_is_guarded(app: TestApp) {
    let repos = repos(&app);
    let admin = create_user(&repos, "admin@example.com", Role::Admin, true).await;
    create_user(&repos, "inactive-admin@example.com", Role::Admin, false).await;
    let demote = UserChanges {
        role: Some(Role::Regular),
        ..UserChanges::default()
    };
    assert_refused_as_the_last_admin(&repos, admin, &demote, RevokeSessions::None).await;
    assert!(matches!(
        repos.users.delete(admin + 500).await,
        Err(RepoError::NotFound)
    ));
    // Deleting a regular user or an inactive admin is never guarded.
    let regular = create_user(&repos, "reg@example.com", Role::Regular, true).await;
    assert_eq!(
        repos.users.delete(regular).await.expect("delete").id,
        regular
    );
}

/// The repository itself decides from the changes whether they would take
/// the last active admin's power away: no caller has to say so.
async fn the_repository_tells_which_changes_the_last_admin_guard_refuses(app: TestApp) {
    let repos = repos(&app);
    let admin = create_user(&repos, "sole-admin@example.com", Role::Admin, true).await;
    let session = new_session(&repos, admin, "hash-sole-admin").await;
    let deactivate = UserChanges {
        is_active: Some(false),
        ..UserChanges::default()
    };
    let demote_and_deactivate = UserChanges {
        role: Some(Role::Regular),
        is_active: Some(false),
        ..UserChanges::default()
    };
    for refused in [&deactivate, &demote_and_deactivate] {
        assert_refused_as_the_last_admin(&repos, admin, refused, RevokeSessions::All).await;
    }
    // A refused change revokes nothing and changes nothing.
    let live = repos
        .sessions
        .list_live(admin, Utc::now())
        .await
        .expect("list");
    assert_eq!(live.iter().map(|s| s.id).collect::<Vec<_>>(), vec![session]);
    let unchanged = repos.users.find_by_id(admin).await.expect("query");
    assert!(unchanged.is_some_and(|user| user.is_active_admin()));

    // Changes that leave the admin an active admin are never refused.
    let keeps_power = UserChanges {
        email: Some(email("still-admin@example.com")),
        password_hash: Some("other-hash".into()),
        role: Some(Role::Admin),
        is_active: Some(true),
        email_verified: Some(true),
    };
    let kept = repos
        .users
        .update(admin, &keeps_power, RevokeSessions::None, Utc::now())
        .await
        .expect("update");
    assert!(kept.is_active_admin());
    assert_eq!(kept.email, "still-admin@example.com");

    // With a second active admin, either may step down; then the other is
    // the last one.
    let second = create_user(&repos, "second-admin@example.com", Role::Admin, true).await;
    let stepped_down = repos
        .users
        .update(admin, &deactivate, RevokeSessions::None, Utc::now())
        .await
        .expect("deactivate");
    assert!(!stepped_down.is_active);
    assert_refused_as_the_last_admin(&repos, second, &deactivate, RevokeSessions::None).await;
    // An inactive admin is deleted without a guard.
    assert_eq!(repos.users.delete(admin).await.expect("delete").id, admin);
}

async fn two_admins_demoting_each_other_at_once_leave_one_admin(app: TestApp) {
    let repos = repos(&app);
    let demote = UserChanges {
        role: Some(Role::Regular),
        ..UserChanges::default()
    };
    let active_admins = UserFilter {
        role: Some(Role::Admin),
        is_active: Some(true),
        ..UserFilter::default()
    };
    let pair = |round: u32| {
        let repos = repos.clone();
        async move {
            let a = create_user(&repos, &format!("a{round}@example.com"), Role::Admin, true).await;
            let b = create_user(&repos, &format!("b{round}@example.com"), Role::Admin, true).await;
            (a, b)
        }
    };
    let mut next = pair(0).await;
    for round in 0..5 {
        // In each round a and b are the only active admins.
        let (a, b) = next;
        let (ra, rb) = tokio::join!(
            repos
                .users
                .update(a, &demote, RevokeSessions::None, Utc::now()),
            repos
                .users
                .update(b, &demote, RevokeSessions::None, Utc::now()),
        );
        assert_eq!(
            usize::from(ra.is_ok()) + usize::from(rb.is_ok()),
            1,
            "round {round}: {ra:?} / {rb:?}"
        );
        let (_, admins) = repos
            .users
            .list(&active_admins, 0, 100)
            .await
            .expect("list");
        assert_eq!(admins, 1, "round {round}");
        // Step the survivor aside for the next round, once that round's
        // admins exist (the survivor is not the last active admin then).
        next = pair(round + 1).await;
        let survivor = if ra.is_ok() { b } else { a };
        let retire = UserChanges {
            is_active: Some(false),
            ..UserChanges::default()
        };
        repos
            .users
            .update(survivor, &retire, RevokeSessions::None, Utc::now())
            .await
            .expect("retire");
    }
}

async fn deleting_a_user_deletes_their_sessions(app: TestApp) {
    let repos = repos(&app);
    let id = create_user(&repos, "gone@example.com", Role::Regular, true).await;
    let session = new_session(&repos, id, "hash-gone").await;
    assert!(repos
        .sessions
        .find_with_user(session, id)
        .await
        .expect("query")
        .is_some());
    repos.users.delete(id).await.expect("delete");
    assert!(repos
        .sessions
        .find_with_user(session, id)
        .await
        .expect("query")
        .is_none());
    let rotation = repos
        .sessions
        .rotate(strict(
            "hash-gone",
            "hash-new",
            Utc::now(),
            Utc::now() + Duration::days(1),
        ))
        .await;
    assert_eq!(rotation.expect("rotate"), Rotation::Invalid);
}

async fn rotation_replaces_the_token_and_detects_reuse(app: TestApp) {
    let repos = repos(&app);
    let user = create_user(&repos, "rot@example.com", Role::Regular, true).await;
    let session = new_session(&repos, user, "h1").await;
    let now = Utc::now();
    let expires = now + Duration::days(7);
    assert_eq!(
        repos
            .sessions
            .rotate(strict("h1", "h2", now, expires))
            .await
            .expect("rotate"),
        Rotation::Rotated {
            session_id: session,
            user_id: user
        }
    );
    assert_eq!(
        repos
            .sessions
            .rotate(strict("h2", "h3", now, expires))
            .await
            .expect("rotate"),
        Rotation::Rotated {
            session_id: session,
            user_id: user
        }
    );
    // h2 is the previous token now: reuse, and the session is revoked.
    assert_eq!(
        repos
            .sessions
            .rotate(strict("h2", "h4", now, expires))
            .await
            .expect("rotate"),
        Rotation::ReuseDetected {
            session_id: session,
            user_id: user
        }
    );
    assert_eq!(
        repos
            .sessions
            .rotate(strict("h3", "h5", now, expires))
            .await
            .expect("rotate"),
        Rotation::Invalid
    );
    let state = repos
        .sessions
        .find_with_user(session, user)
        .await
        .expect("query")
        .expect("session");
    assert!(state.session_revoked_at.is_some());
    assert_eq!(
        repos
            .sessions
            .rotate(strict("unknown", "h6", now, expires))
            .await
            .expect("rotate"),
        Rotation::Invalid
    );
}

async fn expired_sessions_and_inactive_users_do_not_rotate(app: TestApp) {
    let repos = repos(&app);
    let user = create_user(&repos, "exp@example.com", Role::Regular, true).await;
    let past = Utc::now() - Duration::days(10);
    repos
        .sessions
        .create(NewSession {
            user_id: user,
            refresh_token_hash: "old",
            now: past,
            expires_at: past + Duration::days(7),
            max_expires_at: past + Duration::days(30),
            user_agent: None,
            ip: None,
        })
        .await
        .expect("create");
    let now = Utc::now();
    assert_eq!(
        repos
            .sessions
            .rotate(strict("old", "new", now, now + Duration::days(7)))
            .await
            .expect("rotate"),
        Rotation::Invalid
    );
    let inactive = create_user(&repos, "inactive@example.com", Role::Regular, false).await;
    new_session(&repos, inactive, "inactive-hash").await;
    assert_eq!(
        repos
            .sessions
            .rotate(strict("inactive-hash", "n2", now, now + Duration::days(7)))
            .await
            .expect("rotate"),
        Rotation::Invalid
    );
}

async fn concurrent_rotations_of_one_token_have_one_winner(app: TestApp) {
    let repos = repos(&app);
    let user = create_user(&repos, "conc@example.com", Role::Regular, true).await;
    new_session(&repos, user, "shared").await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let repos = repos.clone();
        tasks.push(tokio::spawn(async move {
            let now = Utc::now();
            repos
                .sessions
                .rotate(strict(
                    "shared",
                    &format!("next-{i}"),
                    now,
                    now + Duration::days(7),
                ))
                .await
                .expect("rotate")
        }));
    }
    let mut rotated = 0;
    for task in tasks {
        if matches!(task.await.expect("task"), Rotation::Rotated { .. }) {
            rotated += 1;
        }
    }
    assert_eq!(rotated, 1);
}

async fn a_racing_rotation_within_the_grace_keeps_the_session_and_its_successor(app: TestApp) {
    let repos = repos(&app);
    let user = create_user(&repos, "grace@example.com", Role::Regular, true).await;
    let session = new_session(&repos, user, "g1").await;
    let now = Utc::now();
    let rotated = Rotation::Rotated {
        session_id: session,
        user_id: user,
    };
    let racing = Rotation::WithinGrace {
        session_id: session,
        user_id: user,
    };
    let rotate = |request| {
        let repos = repos.clone();
        async move { repos.sessions.rotate(request).await.expect("rotate") }
    };
    assert_eq!(rotate(with_grace("g1", "g2", now, 10)).await, rotated);
    // The same token again, with the same successor, within the grace: the
    // session stays, and g2 is still its current token.
    assert_eq!(rotate(with_grace("g1", "g2", now, 10)).await, racing);
    assert_eq!(rotate(with_grace("g1", "g2", now, 10)).await, racing);
    let live = repos.sessions.list_live(user, now).await.expect("list");
    assert_eq!(live.len(), 1, "no session was revoked or added");
    assert_eq!(rotate(with_grace("g2", "g3", now, 10)).await, rotated);
    // g1 is two rotations old now: neither current nor previous.
    assert_eq!(
        rotate(with_grace("g1", "g2", now, 10)).await,
        Rotation::Invalid
    );
    // g2 was rotated out at `now`; 11 seconds later the grace (10 s) is over:
    // reuse, and the session is revoked.
    let later = now + Duration::seconds(11);
    assert_eq!(
        rotate(with_grace("g2", "g3", later, 10)).await,
        Rotation::ReuseDetected {
            session_id: session,
            user_id: user
        }
    );
    let state = repos
        .sessions
        .find_with_user(session, user)
        .await
        .expect("query")
        .expect("session");
    assert!(state.session_revoked_at.is_some());
    // A revoked session has no grace.
    assert_eq!(
        rotate(with_grace("g2", "g3", later, 10)).await,
        Rotation::Invalid
    );
}

async fn within_the_grace_only_the_same_successor_and_a_live_session_count(app: TestApp) {
    let repos = repos(&app);
    let user = create_user(&repos, "grace2@example.com", Role::Regular, true).await;
    let session = new_session(&repos, user, "k1").await;
    let now = Utc::now();
    repos
        .sessions
        .rotate(with_grace("k1", "k2", now, 10))
        .await
        .expect("rotate");
    // Another successor than the one the session holds (another signing
    // secret, or a forged request): reuse, even inside the grace.
    assert_eq!(
        repos
            .sessions
            .rotate(with_grace("k1", "other", now, 10))
            .await
            .expect("rotate"),
        Rotation::ReuseDetected {
            session_id: session,
            user_id: user
        }
    );
    // A strict request (no grace) is reuse at once.
    let other = new_session(&repos, user, "m1").await;
    repos
        .sessions
        .rotate(strict("m1", "m2", now, now + Duration::days(7)))
        .await
        .expect("rotate");
    assert_eq!(
        repos
            .sessions
            .rotate(strict("m1", "m2", now, now + Duration::days(7)))
            .await
            .expect("rotate"),
        Rotation::ReuseDetected {
            session_id: other,
            user_id: user
        }
    );
    // A deactivated user's session gets no grace either.
    let inactive = create_user(&repos, "grace3@example.com", Role::Regular, true).await;
    new_session(&repos, inactive, "p1").await;
    repos
        .sessions
        .rotate(with_grace("p1", "p2", now, 10))
        .await
        .expect("rotate");
    repos
        .users
        .update(
            inactive,
            &UserChanges {
                is_active: Some(false),
                ..Default::default()
            },
            RevokeSessions::None,
            now,
        )
        .await
        .expect("deactivate");
    assert!(!matches!(
        repos
            .sessions
            .rotate(with_grace("p1", "p2", now, 10))
            .await
            .expect("rotate"),
        Rotation::WithinGrace { .. } | Rotation::Rotated { .. }
    ));
}

async fn concurrent_rotations_with_one_successor_all_succeed_within_the_grace(app: TestApp) {
    let repos = repos(&app);
    let user = create_user(&repos, "conc-grace@example.com", Role::Regular, true).await;
    let session = new_session(&repos, user, "together").await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let repos = repos.clone();
        tasks.push(tokio::spawn(async move {
            repos
                .sessions
                .rotate(with_grace("together", "after", Utc::now(), 10))
                .await
                .expect("rotate")
        }));
    }
    let (mut rotated, mut racing) = (0, 0);
    for task in tasks {
        match task.await.expect("task") {
            Rotation::Rotated { session_id, .. } if session_id == session => rotated += 1,
            Rotation::WithinGrace { session_id, .. } if session_id == session => racing += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((rotated, racing), (1, 9));
    let live = repos
        .sessions
        .list_live(user, Utc::now())
        .await
        .expect("list");
    assert_eq!(live.len(), 1);
    // The successor is the session's token: it rotates.
    assert!(matches!(
        repos
            .sessions
            .rotate(with_grace("after", "next", Utc::now(), 10))
            .await
            .expect("rotate"),
        Rotation::Rotated { .. }
    ));
}

async fn revocation_by_session_and_by_user(app: TestApp) {
    let repos = repos(&app);
    let user = create_user(&repos, "rev@example.com", Role::Regular, true).await;
    let s1 = new_session(&repos, user, "r1").await;
    let s2 = new_session(&repos, user, "r2").await;
    let s3 = new_session(&repos, user, "r3").await;
    let now = Utc::now();
    assert!(repos.sessions.revoke(s1, now).await.expect("revoke"));
    assert!(!repos.sessions.revoke(s1, now).await.expect("revoke again"));
    assert!(!repos
        .sessions
        .revoke(s3 + 100, now)
        .await
        .expect("revoke unknown"));
    assert_eq!(
        repos
            .sessions
            .revoke_all_for_user(user, Some(s3), now)
            .await
            .expect("revoke all"),
        1
    );
    let live = |s| {
        let repos = repos.clone();
        async move {
            repos
                .sessions
                .find_with_user(s, user)
                .await
                .expect("query")
                .expect("session")
                .session_revoked_at
                .is_none()
        }
    };
    assert!(!live(s1).await);
    assert!(!live(s2).await);
    assert!(live(s3).await);
    assert_eq!(
        repos
            .sessions
            .revoke_all_for_user(user, None, now)
            .await
            .expect("revoke all"),
        1
    );
    assert!(!live(s3).await);
}

async fn a_password_change_can_revoke_sessions_atomically(app: TestApp) {
    let repos = repos(&app);
    let user = create_user(&repos, "pw@example.com", Role::Regular, true).await;
    let keep = new_session(&repos, user, "k").await;
    let drop = new_session(&repos, user, "d").await;
    let changes = UserChanges {
        password_hash: Some("new-hash".into()),
        ..UserChanges::default()
    };
    let updated = repos
        .users
        .update(user, &changes, RevokeSessions::AllExcept(keep), Utc::now())
        .await
        .expect("update");
    assert_eq!(updated.password_hash, "new-hash");
    let kept = repos
        .sessions
        .find_with_user(keep, user)
        .await
        .expect("query")
        .expect("session");
    let dropped = repos
        .sessions
        .find_with_user(drop, user)
        .await
        .expect("query")
        .expect("session");
    assert!(kept.session_revoked_at.is_none());
    assert!(dropped.session_revoked_at.is_some());
    // A session id with the wrong user is not found.
    assert!(repos
        .sessions
        .find_with_user(keep, user + 1)
        .await
        .expect("query")
        .is_none());
}

async fn live_sessions_are_listed_newest_first_and_revoked_per_user(app: TestApp) {
    let repos = repos(&app);
    let owner = create_user(&repos, "owner@example.com", Role::Regular, true).await;
    let other = create_user(&repos, "other@example.com", Role::Regular, true).await;
    let old = new_session(&repos, owner, "l1").await;
    let newer = new_session(&repos, owner, "l2").await;
    let revoked = new_session(&repos, owner, "l3").await;
    let foreign = new_session(&repos, other, "l4").await;
    let now = Utc::now();
    assert!(repos.sessions.revoke(revoked, now).await.expect("revoke"));
    let past = now - Duration::days(30);
    repos
        .sessions
        .create(NewSession {
            user_id: owner,
            refresh_token_hash: "expired",
            now: past,
            expires_at: past + Duration::days(7),
            max_expires_at: past + Duration::days(30),
            user_agent: None,
            ip: None,
        })
        .await
        .expect("create");
    let live = repos
        .sessions
        .list_live(owner, Utc::now())
        .await
        .expect("list");
    assert_eq!(
        live.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![newer, old]
    );
    assert_eq!(live[0].user_agent.as_deref(), Some("test-agent"));
    assert_eq!(live[0].ip.as_deref(), Some("192.0.2.1"));
    // All users: the owner's two and the other user's one; not the revoked or expired.
    assert_eq!(
        repos.sessions.count_live(Utc::now()).await.expect("count"),
        3
    );
    // Someone else's session cannot be revoked through this user.
    assert!(!repos
        .sessions
        .revoke_for_user(foreign, owner, Utc::now())
        .await
        .expect("revoke"));
    assert!(repos
        .sessions
        .revoke_for_user(old, owner, Utc::now())
        .await
        .expect("revoke"));
    assert!(!repos
        .sessions
        .revoke_for_user(old, owner, Utc::now())
        .await
        .expect("again"));
    assert_eq!(
        repos
            .sessions
            .list_live(owner, Utc::now())
            .await
            .expect("list")
            .len(),
        1
    );
    assert_eq!(
        repos
            .sessions
            .list_live(other, Utc::now())
            .await
            .expect("list")
            .len(),
        1
    );
}

async fn the_database_answers_health_checks(app: TestApp) {
    repos(&app).health.ping().await.expect("ping");
}

async fn rotation_never_extends_a_session_past_its_absolute_end(app: TestApp) {
    let repos = repos(&app);
    let user = create_user(&repos, "cap@example.com", Role::Regular, true).await;
    let now = Utc::now();
    let end = now + Duration::hours(1);
    let id = repos
        .sessions
        .create(NewSession {
            user_id: user,
            refresh_token_hash: "c1",
            now,
            expires_at: end,
            max_expires_at: end,
            user_agent: None,
            ip: None,
        })
        .await
        .expect("create");
    let rotated = repos
        .sessions
        .rotate(strict("c1", "c2", now, now + Duration::days(7)))
        .await
        .expect("rotate");
    assert_eq!(
        rotated,
        Rotation::Rotated {
            session_id: id,
            user_id: user
        }
    );
    let live = repos.sessions.list_live(user, now).await.expect("list");
    let expires = live[0].expires_at;
    assert!(
        (expires - end).num_milliseconds().abs() < 2,
        "capped at the absolute end: {expires} vs {end}"
    );
    // Past the absolute end, the token no longer rotates.
    let later = end + Duration::seconds(1);
    assert_eq!(
        repos
            .sessions
            .rotate(strict("c2", "c3", later, later + Duration::days(7)))
            .await
            .expect("rotate"),
        Rotation::Invalid
    );
}

async fn purging_removes_expired_and_long_revoked_sessions_only(app: TestApp) {
    let repos = repos(&app);
    let user = create_user(&repos, "purge@example.com", Role::Regular, true).await;
    let live = new_session(&repos, user, "p-live").await;
    let recently_revoked = new_session(&repos, user, "p-recent").await;
    let long_revoked = new_session(&repos, user, "p-long").await;
    let now = Utc::now();
    repos
        .sessions
        .revoke(recently_revoked, now)
        .await
        .expect("revoke");
    repos
        .sessions
        .revoke(long_revoked, now - Duration::hours(2))
        .await
        .expect("revoke");
    let past = now - Duration::days(30);
    repos
        .sessions
        .create(NewSession {
            user_id: user,
            refresh_token_hash: "p-expired",
            now: past,
            expires_at: past + Duration::days(7),
            max_expires_at: past + Duration::days(30),
            user_agent: None,
            ip: None,
        })
        .await
        .expect("create");
    let purged = repos
        .sessions
        .purge(now, now - Duration::hours(1))
        .await
        .expect("purge");
    assert_eq!(purged, 2, "the expired one and the one revoked 2 hours ago");
    let remaining: Vec<i64> = [live, recently_revoked, long_revoked].into_iter().collect();
    assert_eq!(app.count("sessions", "TRUE").await, 2);
    assert_eq!(
        app.count(
            "sessions",
            &format!("id IN ({}, {})", remaining[0], remaining[1])
        )
        .await,
        2
    );
}

async fn throttle_counters_count_per_account_and_address(app: TestApp) {
    let repos = repos(&app);
    let now = Utc::now();
    let t = |secs: i64| now - Duration::seconds(secs);
    let throttle = &repos.throttle;
    throttle
        .record(
            ThrottleKind::Login,
            Some("acct-a"),
            Some("192.0.2.1"),
            t(600),
        )
        .await
        .expect("record");
    throttle
        .record(
            ThrottleKind::Login,
            Some("acct-a"),
            Some("192.0.2.2"),
            t(300),
        )
        .await
        .expect("record");
    throttle
        .record(
            ThrottleKind::Login,
            Some("acct-b"),
            Some("192.0.2.1"),
            t(100),
        )
        .await
        .expect("record");
    throttle
        .record(
            ThrottleKind::Login,
            Some("acct-a"),
            Some("192.0.2.1"),
            t(7200),
        )
        .await
        .expect("record");
    throttle
        .record(ThrottleKind::Registration, None, Some("192.0.2.1"), t(50))
        .await
        .expect("record");

    let a = throttle
        .count_for_account(ThrottleKind::Login, "acct-a", t(3600))
        .await
        .expect("count");
    assert_eq!(a.count, 2, "the 2-hour-old failure is outside the window");
    let close = |x: Option<chrono::DateTime<Utc>>, y: chrono::DateTime<Utc>| {
        (x.expect("some") - y).num_milliseconds().abs() < 2
    };
    assert!(close(a.oldest, t(600)) && close(a.newest, t(300)), "{a:?}");
    let ip = throttle
        .count_for_ip(ThrottleKind::Login, "192.0.2.1", t(3600))
        .await
        .expect("count");
    assert_eq!(
        ip.count, 2,
        "acct-a and acct-b from the same address; not the sign-up"
    );
    let reg = throttle
        .count_for_ip(ThrottleKind::Registration, "192.0.2.1", t(3600))
        .await
        .expect("count");
    assert_eq!(reg.count, 1);
    let none = throttle
        .count_for_account(ThrottleKind::Login, "nobody", t(3600))
        .await
        .expect("count");
    assert_eq!((none.count, none.oldest, none.newest), (0, None, None));

    throttle
        .clear_account(ThrottleKind::Login, "acct-a")
        .await
        .expect("clear");
    let a = throttle
        .count_for_account(ThrottleKind::Login, "acct-a", t(86_400))
        .await
        .expect("count");
    assert_eq!(a.count, 0);
    let ip = throttle
        .count_for_ip(ThrottleKind::Login, "192.0.2.1", t(3600))
        .await
        .expect("count");
    assert_eq!(
        ip.count, 1,
        "clearing an account leaves other accounts' failures"
    );

    assert_eq!(
        throttle.purge(t(75)).await.expect("purge"),
        1,
        "the acct-b failure"
    );
    assert_eq!(app.count("throttle_events", "TRUE").await, 1);
}

fn audit_event(
    at: chrono::DateTime<Utc>,
    kind: AuditEventType,
    actor: Option<i64>,
    subject: Option<i64>,
) -> NewAuditEvent {
    NewAuditEvent {
        at,
        event_type: kind,
        actor_user_id: actor,
        subject_user_id: subject,
        ip: Some("198.51.100.4".into()),
        user_agent: Some("Mozilla/5.0 'quoted' \"agent\"".into()),
        details: json!({ "reason": "wrong_password", "nested": { "n": 1 } }),
    }
}

async fn audit_events_are_stored_filtered_paged_and_purged(app: TestApp) {
    let repos = repos(&app);
    let now = Utc::now();
    let t = |mins: i64| now - Duration::minutes(mins);
    repos
        .audit
        .append(&[
            audit_event(t(50), AuditEventType::UserCreated, Some(1), Some(2)),
            audit_event(t(40), AuditEventType::LoginFailed, None, Some(2)),
            audit_event(t(30), AuditEventType::LoginSucceeded, Some(2), Some(2)),
            audit_event(t(20), AuditEventType::RoleChanged, Some(2), Some(3)),
            audit_event(t(10), AuditEventType::LoginFailed, None, None),
        ])
        .await
        .expect("append");
    repos
        .audit
        .append(&[])
        .await
        .expect("an empty batch is fine");

    let (all, total) = repos
        .audit
        .list(&AuditFilter::default(), 0, 100)
        .await
        .expect("list");
    assert_eq!(total, 5);
    let kinds: Vec<&str> = all.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "login_failed",
            "role_changed",
            "login_succeeded",
            "login_failed",
            "user_created"
        ],
        "newest first"
    );
    let first = &all[4];
    assert_eq!(first.ip.as_deref(), Some("198.51.100.4"));
    assert_eq!(
        first.user_agent.as_deref(),
        Some("Mozilla/5.0 'quoted' \"agent\"")
    );
    assert_eq!(
        first.details.0,
        json!({ "reason": "wrong_password", "nested": { "n": 1 } })
    );
    assert!((first.at - t(50)).num_milliseconds().abs() < 2);

    let by_user = AuditFilter {
        user_id: Some(2),
        ..AuditFilter::default()
    };
    let (events, total) = repos.audit.list(&by_user, 0, 100).await.expect("list");
    assert_eq!(total, 4, "as actor or as subject");
    assert_eq!(events.len(), 4);
    let about = AuditFilter {
        subject_user_id: Some(2),
        ..AuditFilter::default()
    };
    assert_eq!(repos.audit.list(&about, 0, 100).await.expect("list").1, 3);
    let failed = AuditFilter {
        event_type: Some(AuditEventType::LoginFailed),
        ..AuditFilter::default()
    };
    assert_eq!(repos.audit.list(&failed, 0, 100).await.expect("list").1, 2);
    let window = AuditFilter {
        since: Some(t(45)),
        until: Some(t(15)),
        ..AuditFilter::default()
    };
    let (events, total) = repos.audit.list(&window, 0, 100).await.expect("list");
    assert_eq!(total, 3);
    assert_eq!(events.len(), 3);
    let (page, total) = repos
        .audit
        .list(&AuditFilter::default(), 1, 2)
        .await
        .expect("list");
    assert_eq!(total, 5, "the total ignores paging");
    assert_eq!(
        page.iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
        ["role_changed", "login_succeeded"]
    );

    assert_eq!(repos.audit.purge(t(35)).await.expect("purge"), 2);
    assert_eq!(
        repos
            .audit
            .list(&AuditFilter::default(), 0, 100)
            .await
            .expect("list")
            .1,
        3
    );
}

async fn issue_link(
    repos: &Repositories,
    user_id: i64,
    purpose: EmailTokenPurpose,
    hash: &str,
    expires_in: Duration,
) {
    let now = Utc::now();
    // A link is stored with the message that carries it.
    repos
        .outbox
        .enqueue(
            NewOutboxMessage {
                message_id: &format!("<{hash}@example.com>"),
                payload: b"sealed",
                now,
            },
            Some(NewEmailToken {
                user_id,
                purpose,
                token_hash: hash,
                email: "link@example.com",
                now,
                expires_at: now + expires_in,
            }),
        )
        .await
        .expect("issue");
}

async fn queue_message(repos: &Repositories, id: &str, at: chrono::DateTime<Utc>) {
    repos
        .outbox
        .enqueue(
            NewOutboxMessage {
                message_id: id,
                payload: id.as_bytes(),
                now: at,
            },
            None,
        )
        .await
        .expect("enqueue");
}

fn ids(rows: &[OutboxRow]) -> Vec<&str> {
    rows.iter().map(|r| r.message_id.as_str()).collect()
}

/// A day ahead: the app's own outbox worker claims rows due by the real
/// clock, so rows queued (and claimed) at this time are the test's alone.
fn later_than_the_worker() -> chrono::DateTime<Utc> {
    Utc::now() + Duration::days(1)
}

async fn outbox_rows_are_claimed_once_per_lease_and_retried_when_due(app: TestApp) {
    let repos = repos(&app);
    let outbox = &repos.outbox;
    let now = later_than_the_worker();
    queue_message(&repos, "<a@x>", now - Duration::seconds(3)).await;
    queue_message(&repos, "<b@x>", now - Duration::seconds(2)).await;
    queue_message(&repos, "<c@x>", now - Duration::seconds(1)).await;
    assert_eq!(outbox.pending(now).await.expect("pending"), 3);
    let lease = now + Duration::seconds(60);
    let first = outbox.claim(now, lease, 2).await.expect("claim");
    assert_eq!(ids(&first), ["<a@x>", "<b@x>"], "oldest due first");
    assert!(first.iter().all(|r| r.attempts == 1));
    assert_eq!(first[0].payload, b"<a@x>");
    let second = outbox.claim(now, lease, 2).await.expect("claim");
    assert_eq!(ids(&second), ["<c@x>"], "leased rows are not claimed again");
    assert!(outbox
        .claim(now, lease, 10)
        .await
        .expect("claim")
        .is_empty());
    // The deliverer died: once the lease has passed, the rows come back,
    // with their Message-IDs, counting a second attempt.
    let later = lease + Duration::seconds(1);
    let again = outbox
        .claim(later, later + Duration::seconds(60), 10)
        .await
        .expect("claim");
    assert_eq!(ids(&again), ["<a@x>", "<b@x>", "<c@x>"]);
    assert!(again.iter().all(|r| r.attempts == 2));
    // A failed attempt releases the row until its next attempt is due.
    outbox
        .retry_at(again[0].id, later + Duration::seconds(30), "451 try later")
        .await
        .expect("retry");
    outbox.remove(again[1].id).await.expect("remove");
    let past_lease = later + Duration::seconds(61);
    assert_eq!(
        ids(&outbox
            .claim(past_lease, past_lease, 10)
            .await
            .expect("claim")),
        ["<a@x>", "<c@x>"],
        "a is due again (30 s), b is gone"
    );
    assert_eq!(outbox.pending(now).await.expect("pending"), 2);
    assert_eq!(
        outbox
            .pending(now - Duration::seconds(5))
            .await
            .expect("pending"),
        0,
        "pending counts rows queued by the given time"
    );
}

async fn concurrent_claims_never_share_a_row(app: TestApp) {
    let repos = repos(&app);
    let now = later_than_the_worker();
    for i in 0..20 {
        queue_message(&repos, &format!("<{i}@x>"), now - Duration::seconds(1)).await;
    }
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let repos = repos.clone();
        tasks.push(tokio::spawn(async move {
            let now = later_than_the_worker();
            repos
                .outbox
                .claim(now, now + Duration::seconds(60), 5)
                .await
                .expect("claim")
        }));
    }
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.expect("task").into_iter().map(|r| r.message_id));
    }
    let total = claimed.len();
    claimed.sort();
    claimed.dedup();
    assert_eq!(claimed.len(), total, "a row claimed twice");
    assert_eq!(total, 20);
}

async fn a_composed_message_and_its_link_are_stored_together(app: TestApp) {
    let repos = repos(&app);
    let user = create_user(&repos, "compose@example.com", Role::Regular, true).await;
    let now = later_than_the_worker();
    queue_message(&repos, "<req@x>", now).await;
    let row = repos
        .outbox
        .claim(now, now + Duration::seconds(60), 1)
        .await
        .expect("claim")
        .remove(0);
    let link = |hash: &'static str| NewEmailToken {
        user_id: user,
        purpose: EmailTokenPurpose::ResetPassword,
        token_hash: hash,
        email: "compose@example.com",
        now,
        expires_at: now + Duration::hours(1),
    };
    repos
        .outbox
        .compose(row.id, b"composed", link("composed-link"))
        .await
        .expect("compose");
    let later = now + Duration::seconds(61);
    let again = repos
        .outbox
        .claim(later, later, 1)
        .await
        .expect("claim")
        .remove(0);
    assert_eq!(again.payload, b"composed");
    assert_eq!(again.message_id, "<req@x>");
    assert!(repos
        .email_tokens
        .find("composed-link", EmailTokenPurpose::ResetPassword)
        .await
        .expect("find")
        .is_some());
    // A row that is gone takes its link with it: nothing is stored.
    repos.outbox.remove(again.id).await.expect("remove");
    assert!(matches!(
        repos
            .outbox
            .compose(again.id, b"late", link("orphan-link"))
            .await,
        Err(RepoError::NotFound)
    ));
    assert!(repos
        .email_tokens
        .find("orphan-link", EmailTokenPurpose::ResetPassword)
        .await
        .expect("find")
        .is_none());
}

async fn emailed_links_are_single_use_replaced_expiring_and_purged(app: TestApp) {
    let repos = repos(&app);
    let user = create_user(&repos, "link@example.com", Role::Regular, true).await;
    let other = create_user(&repos, "other@example.com", Role::Regular, true).await;
    let (verify, reset) = (
        EmailTokenPurpose::VerifyEmail,
        EmailTokenPurpose::ResetPassword,
    );
    let hour = Duration::hours(1);
    issue_link(&repos, user, reset, "reset-1", hour).await;
    issue_link(&repos, user, verify, "verify-1", hour).await;
    issue_link(&repos, other, reset, "other-reset", hour).await;
    // A newer link of one purpose revokes the user's older ones of that purpose only.
    issue_link(&repos, user, reset, "reset-2", hour).await;
    let now = Utc::now();
    let tokens = &repos.email_tokens;
    assert_eq!(
        tokens.use_token("reset-1", reset, now).await.expect("use"),
        Err(EmailTokenProblem::Revoked)
    );
    assert_eq!(
        tokens.use_token("reset-2", verify, now).await.expect("use"),
        Err(EmailTokenProblem::Unknown),
        "a link works only for its purpose"
    );
    assert_eq!(
        tokens.use_token("reset-2", reset, now).await.expect("use"),
        Ok(UsedEmailToken {
            user_id: user,
            email: "link@example.com".to_owned()
        })
    );
    assert_eq!(
        tokens.use_token("reset-2", reset, now).await.expect("use"),
        Err(EmailTokenProblem::Used)
    );
    assert_eq!(
        tokens.use_token("nope", reset, now).await.expect("use"),
        Err(EmailTokenProblem::Unknown)
    );
    let record = tokens
        .find("verify-1", verify)
        .await
        .expect("find")
        .expect("stored");
    assert_eq!(record.problem(now), None);
    assert_eq!(
        record.problem(now + Duration::hours(2)),
        Some(EmailTokenProblem::Expired)
    );
    assert_eq!(
        tokens
            .use_token("verify-1", verify, now + Duration::hours(2))
            .await
            .expect("use"),
        Err(EmailTokenProblem::Expired)
    );
    // Withdrawing a user's links leaves other users' alone.
    assert_eq!(
        tokens
            .revoke_for_user(user, verify, now)
            .await
            .expect("revoke"),
        1
    );
    assert_eq!(
        tokens
            .use_token("other-reset", reset, now)
            .await
            .expect("use"),
        Ok(UsedEmailToken {
            user_id: other,
            email: "link@example.com".to_owned()
        })
    );

    // Of concurrent uses of one link, exactly one wins.
    issue_link(&repos, user, reset, "raced", hour).await;
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let tokens = repos.email_tokens.clone();
            tokio::spawn(async move { tokens.use_token("raced", reset, Utc::now()).await })
        })
        .collect();
    let mut winners = 0;
    for attempt in attempts {
        if attempt.await.expect("task").expect("use").is_ok() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);

    // Verification marks the address only while the user still has it.
    assert!(repos
        .users
        .mark_email_verified(user, "link@example.com", now)
        .await
        .expect("mark"));
    assert!(!repos
        .users
        .mark_email_verified(other, "link@example.com", now)
        .await
        .expect("mark"));
    let stored = repos
        .users
        .find_by_id(user)
        .await
        .expect("find")
        .expect("user");
    assert!(stored.email_verified);
    assert!(
        !repos
            .users
            .find_by_id(other)
            .await
            .expect("find")
            .expect("user")
            .email_verified
    );

    // Links a user had go with the user; purging removes expired ones.
    repos.users.delete(other).await.expect("delete");
    assert_eq!(
        tokens.purge(now + Duration::hours(2)).await.expect("purge"),
        4,
        "every link of the remaining user expired by then"
    );
    assert_eq!(app.count("email_tokens", "TRUE").await, 0);
}

async fn a_second_factor_is_pending_then_confirmed_then_removed_whole(app: TestApp) {
    let repos = repos(&app);
    let factors = &repos.second_factors;
    let id = create_user(&repos, "factor@example.com", Role::Regular, true).await;
    let now = Utc::now();
    assert!(factors.totp(id).await.expect("read").is_none());
    assert!(factors
        .start_totp(id, b"sealed-one", now)
        .await
        .expect("start"));
    // Starting again replaces the pending secret.
    assert!(factors
        .start_totp(id, b"sealed-two", now)
        .await
        .expect("restart"));
    let pending = factors.totp(id).await.expect("read").expect("pending");
    assert_eq!(pending.secret_sealed, b"sealed-two");
    assert!(pending.confirmed_at.is_none());
    // No step is accepted before the confirmation.
    assert!(!factors.use_totp_step(id, 100).await.expect("step"));

    let hashes: Vec<String> = (0..10).map(|n| format!("hash-{n}")).collect();
    assert!(factors
        .confirm_totp(id, 100, &hashes, now)
        .await
        .expect("confirm"));
    assert!(
        !factors
            .confirm_totp(id, 101, &hashes, now)
            .await
            .expect("twice"),
        "once only"
    );
    let user = repos
        .users
        .find_by_id(id)
        .await
        .expect("find")
        .expect("user");
    assert!(user.mfa_enabled);
    // A confirmed secret is never replaced by a new start.
    assert!(!factors
        .start_totp(id, b"sealed-three", now)
        .await
        .expect("start"));
    assert_eq!(
        factors
            .totp(id)
            .await
            .expect("read")
            .expect("on")
            .secret_sealed,
        b"sealed-two"
    );

    // Steps: only later than the last accepted one, each once.
    assert!(!factors.use_totp_step(id, 100).await.expect("same step"));
    assert!(!factors.use_totp_step(id, 99).await.expect("earlier"));
    assert!(factors.use_totp_step(id, 101).await.expect("later"));
    assert!(!factors.use_totp_step(id, 101).await.expect("again"));

    // Recovery codes: each once, and only the user's own.
    let other = create_user(&repos, "other@example.com", Role::Regular, true).await;
    assert_eq!(factors.recovery_codes_left(id).await.expect("count"), 10);
    assert!(!factors
        .use_recovery_code(other, "hash-0", now)
        .await
        .expect("other user"));
    assert!(factors
        .use_recovery_code(id, "hash-0", now)
        .await
        .expect("use"));
    assert!(!factors
        .use_recovery_code(id, "hash-0", now)
        .await
        .expect("reuse"));
    assert!(!factors
        .use_recovery_code(id, "unknown", now)
        .await
        .expect("unknown"));
    assert_eq!(factors.recovery_codes_left(id).await.expect("count"), 9);
    // Replacing: the old ones stop working; not without a factor on.
    let fresh: Vec<String> = (0..10).map(|n| format!("fresh-{n}")).collect();
    assert!(factors
        .replace_recovery_codes(id, &fresh, now)
        .await
        .expect("replace"));
    assert!(!factors
        .use_recovery_code(id, "hash-1", now)
        .await
        .expect("old"));
    assert_eq!(factors.recovery_codes_left(id).await.expect("count"), 10);
    assert!(!factors
        .replace_recovery_codes(other, &fresh, now)
        .await
        .expect("off"));
    assert_eq!(factors.recovery_codes_left(other).await.expect("count"), 0);

    // Turning it off takes the secret, the codes and the challenges with it.
    factors
        .create_challenge(NewChallenge {
            token_hash: "challenge-of-id",
            purpose: ChallengePurpose::SignIn,
            user_id: id,
            payload: None,
            now,
            expires_at: now + Duration::minutes(5),
        })
        .await
        .expect("challenge");
    assert!(factors.disable(id, now).await.expect("disable"));
    assert!(!factors.disable(id, now).await.expect("twice"));
    assert!(factors.totp(id).await.expect("read").is_none());
    assert_eq!(factors.recovery_codes_left(id).await.expect("count"), 0);
    assert!(factors
        .find_challenge("challenge-of-id", ChallengePurpose::SignIn, now)
        .await
        .expect("find")
        .is_none());
    assert!(
        !repos
            .users
            .find_by_id(id)
            .await
            .expect("find")
            .expect("user")
            .mfa_enabled
    );

    // Deleting a user deletes their factor.
    assert!(factors.start_totp(other, b"x", now).await.expect("start"));
    repos.users.delete(other).await.expect("delete");
    assert_eq!(app.count("totp_secrets", "TRUE").await, 0);
}

async fn concurrent_uses_of_one_step_or_one_code_have_one_winner(app: TestApp) {
    let repos = repos(&app);
    let id = create_user(&repos, "race@example.com", Role::Regular, true).await;
    let now = Utc::now();
    let factors = repos.second_factors.clone();
    assert!(factors.start_totp(id, b"sealed", now).await.expect("start"));
    let hashes = vec!["only-code".to_owned()];
    assert!(factors
        .confirm_totp(id, 1, &hashes, now)
        .await
        .expect("confirm"));
    let steps = futures::future::join_all((0..8).map(|_| {
        let factors = factors.clone();
        tokio::spawn(async move { factors.use_totp_step(id, 2).await.expect("step") })
    }))
    .await;
    assert_eq!(
        steps
            .into_iter()
            .filter(|won| *won.as_ref().expect("task"))
            .count(),
        1
    );
    let codes = futures::future::join_all((0..8).map(|_| {
        let factors = factors.clone();
        tokio::spawn(async move {
            factors
                .use_recovery_code(id, "only-code", Utc::now())
                .await
                .expect("code")
        })
    }))
    .await;
    assert_eq!(
        codes
            .into_iter()
            .filter(|won| *won.as_ref().expect("task"))
            .count(),
        1
    );
}

async fn challenges_are_single_use_expire_and_are_purged(app: TestApp) {
    let repos = repos(&app);
    let factors = repos.second_factors.clone();
    let id = create_user(&repos, "challenge@example.com", Role::Regular, true).await;
    let now = Utc::now();
    for (hash, purpose, payload) in [
        ("sign-in", ChallengePurpose::SignIn, None),
        (
            "codes",
            ChallengePurpose::RecoveryCodes,
            Some(&b"sealed codes"[..]),
        ),
    ] {
        factors
            .create_challenge(NewChallenge {
                token_hash: hash,
                purpose,
                user_id: id,
                payload,
                now,
                expires_at: now + Duration::minutes(5),
            })
            .await
            .expect("create");
    }
    // Found only under its own purpose; reading does not use it up.
    assert!(factors
        .find_challenge("sign-in", ChallengePurpose::RecoveryCodes, now)
        .await
        .expect("find")
        .is_none());
    let found = factors
        .find_challenge("sign-in", ChallengePurpose::SignIn, now)
        .await
        .expect("find")
        .expect("live");
    assert_eq!(found.user_id, id);
    assert!(factors
        .find_challenge("sign-in", ChallengePurpose::SignIn, now)
        .await
        .expect("find")
        .is_some());
    // Used once, even by concurrent callers.
    let uses = futures::future::join_all((0..6).map(|_| {
        let factors = factors.clone();
        tokio::spawn(async move {
            factors
                .use_challenge("codes", ChallengePurpose::RecoveryCodes, Utc::now())
                .await
                .expect("use")
        })
    }))
    .await;
    let winners: Vec<_> = uses.into_iter().filter_map(|r| r.expect("task")).collect();
    assert_eq!(winners.len(), 1);
    assert_eq!(winners[0].payload.as_deref(), Some(&b"sealed codes"[..]));
    // Expired: neither found nor usable, and purged.
    let later = now + Duration::minutes(6);
    assert!(factors
        .find_challenge("sign-in", ChallengePurpose::SignIn, later)
        .await
        .expect("find")
        .is_none());
    assert!(factors
        .use_challenge("sign-in", ChallengePurpose::SignIn, later)
        .await
        .expect("use")
        .is_none());
    assert_eq!(factors.purge(later).await.expect("purge"), 2);
    assert_eq!(app.count("mfa_challenges", "TRUE").await, 0);
}

async fn a_session_records_when_it_last_authenticated(app: TestApp) {
    let repos = repos(&app);
    let id = create_user(&repos, "recent@example.com", Role::Regular, true).await;
    let other = create_user(&repos, "else@example.com", Role::Regular, true).await;
    let session = new_session(&repos, id, "recent-hash").await;
    let now = Utc::now();
    let at = repos
        .sessions
        .authenticated_at(session, id, now)
        .await
        .expect("read")
        .expect("the sign-in counts");
    assert!((now - at).num_seconds().abs() < 5);
    // Only the session's own user, and only while it is live.
    assert!(repos
        .sessions
        .authenticated_at(session, other, now)
        .await
        .expect("read")
        .is_none());
    let later = now + Duration::minutes(20);
    assert!(repos
        .sessions
        .mark_authenticated(session, id, later)
        .await
        .expect("mark"));
    assert!(!repos
        .sessions
        .mark_authenticated(session, other, later)
        .await
        .expect("other"));
    let renewed = repos
        .sessions
        .authenticated_at(session, id, later)
        .await
        .expect("read")
        .expect("renewed");
    assert!(
        (renewed - later).num_milliseconds().abs() < 1,
        "{renewed} vs {later}"
    );
    repos.sessions.revoke(session, later).await.expect("revoke");
    assert!(repos
        .sessions
        .authenticated_at(session, id, later)
        .await
        .expect("read")
        .is_none());
    assert!(!repos
        .sessions
        .mark_authenticated(session, id, later)
        .await
        .expect("revoked"));
}

fn new_passkey<'a>(user_id: i64, credential_id: &'a [u8], name: &'a str) -> NewPasskey<'a> {
    NewPasskey {
        user_id,
        credential_id,
        name,
        credential: r#"{"cred":{"counter":0,"backup_eligible":true}}"#,
        backup_eligible: true,
        now: Utc::now(),
        max_per_user: 3,
    }
}

async fn passkeys_are_unique_bounded_per_user_and_owned(app: TestApp) {
    let repos = repos(&app);
    let keys = repos.passkeys.clone();
    let alice = create_user(&repos, "alice@example.com", Role::Regular, true).await;
    let bob = create_user(&repos, "bob@example.com", Role::Regular, true).await;
    // One user handle per user: the first candidate stays.
    let handle = keys.user_handle(alice, &[1; 16]).await.expect("handle");
    assert_eq!(handle, vec![1; 16]);
    assert_eq!(
        keys.user_handle(alice, &[2; 16]).await.expect("again"),
        vec![1; 16]
    );
    assert_eq!(
        keys.user_by_handle(&[1; 16]).await.expect("find"),
        Some(alice)
    );
    assert_eq!(keys.user_by_handle(&[2; 16]).await.expect("find"), None);
    let first = keys
        .add(new_passkey(alice, b"cred-1", "Laptop"))
        .await
        .expect("add")
        .expect("stored");
    assert_eq!(first.user_id, alice);
    assert_eq!(first.name, "Laptop");
    assert!(first.backup_eligible);
    assert!(first.last_used_at.is_none());
    // A credential id belongs to one user only, whoever tries again.
    for owner in [alice, bob] {
        assert!(matches!(
            keys.add(new_passkey(owner, b"cred-1", "Copy")).await,
            Err(RepoError::CredentialTaken)
        ));
    }
    // At most `max_per_user` each.
    for id in [&b"cred-2"[..], b"cred-3"] {
        keys.add(new_passkey(alice, id, "More"))
            .await
            .expect("add")
            .expect("stored");
    }
    assert!(keys
        .add(new_passkey(alice, b"cred-4", "Too many"))
        .await
        .expect("add")
        .is_none());
    assert!(keys
        .add(new_passkey(bob, b"cred-4", "Bob's"))
        .await
        .expect("add")
        .is_some());
    let listed = keys.list(alice).await.expect("list");
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0].id, first.id, "oldest first");
    let found = keys
        .by_credential_id(b"cred-1")
        .await
        .expect("find")
        .expect("known");
    assert_eq!(found.id, first.id);
    // Renamed and removed only by their owner.
    assert!(keys
        .rename(bob, first.id, "Mine")
        .await
        .expect("rename")
        .is_none());
    let renamed = keys
        .rename(alice, first.id, "Work laptop")
        .await
        .expect("rename")
        .expect("owned");
    assert_eq!(renamed.name, "Work laptop");
    let later = Utc::now();
    keys.record_use(first.id, r#"{"cred":{"counter":7}}"#, false, later)
        .await
        .expect("use");
    let used = keys
        .by_credential_id(b"cred-1")
        .await
        .expect("find")
        .expect("known");
    assert_eq!(used.credential, r#"{"cred":{"counter":7}}"#);
    assert!(!used.backup_eligible);
    let at = used.last_used_at.expect("last use");
    assert!((at - later).num_milliseconds().abs() < 1, "{at} vs {later}");
    assert!(keys.remove(bob, first.id).await.expect("remove").is_none());
    let removed = keys
        .remove(alice, first.id)
        .await
        .expect("remove")
        .expect("owned");
    assert_eq!(removed.name, "Work laptop");
    assert!(keys
        .by_credential_id(b"cred-1")
        .await
        .expect("find")
        .is_none());
    // Deleting the user deletes their passkeys and handle.
    repos.users.delete(alice).await.expect("delete");
    assert_eq!(
        app.count("passkeys", &format!("user_id = {alice}")).await,
        0
    );
    assert_eq!(keys.user_by_handle(&[1; 16]).await.expect("find"), None);
}

async fn ceremonies_are_taken_once_by_key_and_purpose_and_expire(app: TestApp) {
    let repos = repos(&app);
    let keys = repos.passkeys.clone();
    let id = create_user(&repos, "ceremony@example.com", Role::Regular, true).await;
    let now = Utc::now();
    let ceremony = |key: &'static str, purpose, state: &'static str| NewCeremony {
        key_hash: key,
        purpose,
        user_id: Some(id),
        state,
        now,
        expires_at: now + Duration::minutes(5),
    };
    keys.start_ceremony(ceremony("reg", CeremonyPurpose::Register, "first"))
        .await
        .expect("start");
    // A new one under the same key replaces it.
    keys.start_ceremony(ceremony("reg", CeremonyPurpose::Register, "second"))
        .await
        .expect("restart");
    assert!(keys
        .take_ceremony("reg", CeremonyPurpose::SignIn, now)
        .await
        .expect("take")
        .is_none());
    let taken = keys
        .take_ceremony("reg", CeremonyPurpose::Register, now)
        .await
        .expect("take")
        .expect("live");
    assert_eq!(taken.state, "second");
    assert_eq!(taken.user_id, Some(id));
    assert!(keys
        .take_ceremony("reg", CeremonyPurpose::Register, now)
        .await
        .expect("take")
        .is_none());
    // Of concurrent takers exactly one wins.
    keys.start_ceremony(NewCeremony {
        user_id: None,
        ..ceremony("sign", CeremonyPurpose::SignIn, "state")
    })
    .await
    .expect("start");
    let takes = futures::future::join_all((0..6).map(|_| {
        let keys = keys.clone();
        tokio::spawn(async move {
            keys.take_ceremony("sign", CeremonyPurpose::SignIn, Utc::now())
                .await
                .expect("take")
        })
    }))
    .await;
    let winners: Vec<_> = takes.into_iter().filter_map(|t| t.expect("task")).collect();
    assert_eq!(winners.len(), 1);
    assert_eq!(winners[0].user_id, None);
    // Expired: not taken, then purged.
    keys.start_ceremony(ceremony("late", CeremonyPurpose::SecondFactor, "s"))
        .await
        .expect("start");
    let later = now + Duration::minutes(6);
    assert!(keys
        .take_ceremony("late", CeremonyPurpose::SecondFactor, later)
        .await
        .expect("take")
        .is_none());
    assert_eq!(keys.purge_ceremonies(later).await.expect("purge"), 1);
    assert_eq!(app.count("webauthn_challenges", "TRUE").await, 0);
}

both_backends!(
    emailed_links_are_single_use_replaced_expiring_and_purged,
    rotation_never_extends_a_session_past_its_absolute_end,
    purging_removes_expired_and_long_revoked_sessions_only,
    throttle_counters_count_per_account_and_address,
    audit_events_are_stored_filtered_paged_and_purged,
    users_round_trip_with_their_fields,
    a_second_user_with_the_same_email_is_email_taken,
    concurrent_creates_of_one_email_make_exactly_one_user,
    listing_filters_pages_and_counts,
    search_finds_substrings_anywhere_ignoring_case,
    search_takes_wildcards_and_query_syntax_literally,
    search_combines_with_role_status_and_paging,
    search_follows_email_changes_and_deletions,
    search_for_a_needle_most_users_contain,
    the_unfiltered_total_counts_every_user,
    updates_apply_only_the_given_fields,
    the_last_active_admin_is_guarded,
    the_repository_tells_which_changes_the_last_admin_guard_refuses,
    two_admins_demoting_each_other_at_once_leave_one_admin,
    deleting_a_user_deletes_their_sessions,
    rotation_replaces_the_token_and_detects_reuse,
    expired_sessions_and_inactive_users_do_not_rotate,
    concurrent_rotations_of_one_token_have_one_winner,
    a_racing_rotation_within_the_grace_keeps_the_session_and_its_successor,
    within_the_grace_only_the_same_successor_and_a_live_session_count,
    concurrent_rotations_with_one_successor_all_succeed_within_the_grace,
    outbox_rows_are_claimed_once_per_lease_and_retried_when_due,
    concurrent_claims_never_share_a_row,
    a_composed_message_and_its_link_are_stored_together,
    revocation_by_session_and_by_user,
    a_password_change_can_revoke_sessions_atomically,
    live_sessions_are_listed_newest_first_and_revoked_per_user,
    the_database_answers_health_checks,
    a_second_factor_is_pending_then_confirmed_then_removed_whole,
    concurrent_uses_of_one_step_or_one_code_have_one_winner,
    challenges_are_single_use_expire_and_are_purged,
    a_session_records_when_it_last_authenticated,
    passkeys_are_unique_bounded_per_user_and_owned,
    ceremonies_are_taken_once_by_key_and_purpose_and_expire,
);

each_backend!(users_stored_before_the_search_index_are_found);
