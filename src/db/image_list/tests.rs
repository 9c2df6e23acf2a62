//! List queries: Glance's rules, both drivers alike, and every plan an index.

use super::*;
use crate::db::images::ImageRepo;
use crate::image::Visibility;
use crate::ports::memory::MemoryDb;
use crate::ports::Database;
use crate::settings::ImageLimits;
use crate::timestamp::Timestamp;

fn img(id: &str, owner: &str, t: i64) -> Image {
    let mut i = Image::new(id.to_string(), Some(owner.to_string()), Timestamp(t));
    i.name = Some(format!("name-{id}"));
    i
}

fn member(p: &str) -> Caller {
    Caller::new(Some(p.to_string()), None, &["member"])
}

fn ids(v: &[Image]) -> Vec<&str> {
    v.iter().map(|i| i.id.as_str()).collect()
}

fn list(repo: &ImageRepo, q: &str, c: &Caller) -> Vec<String> {
    let q = ListQuery::parse(q, &ImageLimits::default()).unwrap();
    let (v, _) = repo.list(&q, c, None).unwrap();
    v.into_iter().map(|i| i.id).collect()
}

#[test]
fn listing_follows_glance_visibility_rules() {
    let db = MemoryDb::new();
    let repo = ImageRepo::open(&db).unwrap();
    let mut pubi = img("pub", "p2", 1);
    pubi.visibility = Visibility::Public;
    let mut comm = img("comm", "p2", 2);
    comm.visibility = Visibility::Community;
    let mut priv2 = img("priv2", "p2", 3);
    priv2.visibility = Visibility::Private;
    let shared2 = img("shared2", "p2", 4);
    let own = img("own", "p1", 5);
    for i in [&pubi, &comm, &priv2, &shared2, &own] {
        repo.insert(i).unwrap();
    }
    let p1 = member("p1");
    assert_eq!(list(&repo, "", &p1), vec!["own", "pub"]);
    assert_eq!(list(&repo, "visibility=community", &p1), vec!["comm"]);
    assert_eq!(
        list(&repo, "visibility=all", &p1),
        vec!["own", "comm", "pub"]
    );
    db.execute(
        "INSERT INTO image_members (image_id, member, status, created_at, updated_at) \
         VALUES ('shared2', 'p1', 'pending', 'x', 'x')",
        &[],
    )
    .unwrap();
    assert_eq!(list(&repo, "", &p1), vec!["own", "pub"]);
    assert_eq!(
        list(&repo, "visibility=shared&member_status=pending", &p1),
        vec!["own", "shared2"]
    );
    let admin = Caller::new(Some("p9".into()), None, &["admin"]);
    assert_eq!(
        list(&repo, "", &admin),
        vec!["own", "shared2", "priv2", "pub"]
    );
}

#[test]
fn filters_sorting_and_paging() {
    let db = MemoryDb::new();
    let repo = ImageRepo::open(&db).unwrap();
    for (n, id) in ["c", "a", "d", "b"].iter().enumerate() {
        let mut i = img(id, "p1", n as i64);
        i.size = Some(n as i64 * 10);
        i.tags = vec!["all".into(), format!("t{id}")];
        i.properties.insert(
            "os_distro".into(),
            if n % 2 == 0 { "debian" } else { "fedora" }.into(),
        );
        repo.insert(&i).unwrap();
    }
    let p1 = member("p1");
    assert_eq!(
        list(&repo, "sort_key=name&sort_dir=asc", &p1),
        vec!["a", "b", "c", "d"]
    );
    assert_eq!(list(&repo, "sort=size:desc", &p1), vec!["b", "d", "a", "c"]);
    assert_eq!(
        list(&repo, "os_distro=debian&sort=name:asc", &p1),
        vec!["c", "d"]
    );
    assert_eq!(list(&repo, "tag=all&tag=ta", &p1), vec!["a"]);
    assert_eq!(
        list(&repo, "size_min=10&size_max=20&sort=name:asc", &p1),
        vec!["a", "d"]
    );
    assert_eq!(
        list(&repo, "name=in:name-a,name-b&sort=name:asc", &p1),
        vec!["a", "b"]
    );
    assert_eq!(
        list(&repo, "created_at=gte:1970-01-01T00:00:02Z", &p1),
        vec!["b", "d"]
    );

    let q = ListQuery::parse(
        "sort_key=name&sort_dir=asc&limit=3",
        &ImageLimits::default(),
    )
    .unwrap();
    let (page1, more) = repo.list(&q, &p1, None).unwrap();
    assert_eq!((ids(&page1), more), (vec!["a", "b", "c"], true));
    let (page2, more) = repo.list(&q, &p1, Some(&page1[2])).unwrap();
    assert_eq!((ids(&page2), more), (vec!["d"], false));
}

#[test]
fn a_page_of_huge_records_is_cut_by_bytes() {
    let db = MemoryDb::new();
    let repo = ImageRepo::open(&db).unwrap();
    let big = "x".repeat((PAGE_BYTES / 3) as usize);
    for (n, id) in ["a", "b", "c", "d"].iter().enumerate() {
        let mut i = img(id, "p1", n as i64);
        i.properties.insert("blob".into(), big.clone());
        repo.insert(&i).unwrap();
    }
    let q = ListQuery::parse("sort_key=name&sort_dir=asc", &ImageLimits::default()).unwrap();
    let (page, more) = repo.list(&q, &member("p1"), None).unwrap();
    assert_eq!((ids(&page), more), (vec!["a", "b"], true));
    let (rest, more) = repo.list(&q, &member("p1"), Some(&page[1])).unwrap();
    assert_eq!((ids(&rest), more), (vec!["c", "d"], false));
}

/// A small catalogue with every kind of row a list meets: four owners, all
/// visibilities and several statuses, hidden, deleted and killed images,
/// duplicate names, missing sizes and formats, tags, properties, and
/// memberships in every state.
fn catalogue(db: &MemoryDb) -> Vec<Image> {
    use crate::image::{DiskFormat, Status};
    let repo = ImageRepo::open(db).unwrap();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let visibilities = [
        Visibility::Public,
        Visibility::Private,
        Visibility::Shared,
        Visibility::Community,
    ];
    let statuses = [
        Status::Active,
        Status::Queued,
        Status::Deactivated,
        Status::Killed,
    ];
    let formats = [
        None,
        Some(DiskFormat::Qcow2),
        Some(DiskFormat::Raw),
        Some(DiskFormat::Iso),
    ];
    let mut all = Vec::new();
    for n in 0..240 {
        let owner = format!("p{}", next(4) + 1);
        let mut i = img(&format!("img-{n:03}"), &owner, 1_000 + next(50) as i64 * 60);
        i.updated_at = Timestamp(i.created_at.0 + next(5) as i64);
        i.name = (next(10) != 0).then(|| format!("n{}", next(12)));
        i.visibility = visibilities[next(4) as usize];
        i.status = statuses[(next(10) as usize).saturating_sub(6)];
        i.os_hidden = next(10) == 0;
        i.protected = next(5) == 0;
        i.size = (next(4) != 0).then(|| next(8) as i64 * 1000);
        i.disk_format = formats[next(4) as usize];
        for t in 0..3 {
            if next(3) == 0 {
                i.tags.push(format!("t{t}"));
            }
        }
        if next(2) == 0 {
            let distro = ["debian", "fedora", "ubuntu"][next(3) as usize];
            i.properties.insert("os_distro".into(), distro.into());
        }
        repo.insert(&i).unwrap();
        if i.visibility == Visibility::Shared {
            for m in ["p1", "p2", "p3"] {
                let status = ["", "pending", "accepted", "rejected"][next(4) as usize];
                if !status.is_empty() && m != owner {
                    db.execute(
                        "INSERT INTO image_members (image_id, member, status, created_at, \
                         updated_at) VALUES (?, ?, ?, 'x', 'x')",
                        &[i.id.clone().into(), m.into(), status.into()],
                    )
                    .unwrap();
                }
            }
        }
        if next(12) == 0 {
            repo.delete(&i.id, Timestamp(9_000)).unwrap();
        }
        all.push(i);
    }
    // Images changed after they were written: what the side tables copy
    // of them (migration 8) follows.
    for i in all.iter_mut() {
        if next(6) != 0 {
            continue;
        }
        i.visibility = visibilities[next(4) as usize];
        i.name = (next(4) != 0).then(|| format!("n{}", next(12)));
        i.os_hidden = next(10) == 0;
        i.owner = Some(format!("p{}", next(4) + 1));
        i.status = statuses[(next(10) as usize).saturating_sub(6)];
        db.execute(
            "UPDATE images SET visibility = ?, name = ?, os_hidden = ?, owner = ?, status = ? \
             WHERE id = ?",
            &[
                i.visibility.as_str().into(),
                i.name.clone().map_or(SqlValue::Null, SqlValue::from),
                i.os_hidden.into(),
                i.owner.clone().map_or(SqlValue::Null, SqlValue::from),
                i.status.as_str().into(),
                i.id.clone().into(),
            ],
        )
        .unwrap();
    }
    all
}

/// Query strings that exercise every filter, sort key, direction and
/// visibility the core builds (`{id}` is replaced by an image id).
fn query_shapes() -> Vec<String> {
    let mut q: Vec<String> = vec![
        "".into(),
        "sort=name:asc,size:desc".into(),
        "sort=status:asc,name:desc,id:asc".into(),
        "sort_key=disk_format&sort_key=size&sort_dir=asc&sort_dir=desc".into(),
        "os_distro=debian".into(),
        "os_distro=ubuntu&sort_key=name&sort_dir=asc".into(),
        "tag=t1".into(),
        "tag=t0&tag=t2&sort=size:asc".into(),
        "name=in:n1,n2".into(),
        "name=in:n1,n1,n2&status=in:active,active".into(),
        "name=n3&sort_key=name".into(),
        "name=eq:n4".into(),
        "status=queued".into(),
        "status=in:queued,deactivated&sort=name:asc".into(),
        "disk_format=iso".into(),
        "disk_format=in:raw,iso".into(),
        "container_format=bare".into(),
        "size_min=2000&size_max=5000".into(),
        "size=3000".into(),
        "virtual_size_min=1".into(),
        "created_at=gte:1970-01-01T00:30:00Z".into(),
        "updated_at=lt:1970-01-01T00:40:00Z&sort_key=updated_at".into(),
        "created_at=neq:1970-01-01T00:30:00Z".into(),
        "protected=true".into(),
        "min_ram=0&min_disk=0".into(),
        "checksum=abc".into(),
        "os_hash_algo=sha512".into(),
        "os_hash_value=abc".into(),
        "owner=p2".into(),
        "owner=p1&sort_key=name".into(),
        "id={id}".into(),
        "id=in:{id},img-005".into(),
        "os_hidden=true".into(),
        "visibility=public".into(),
        "visibility=private".into(),
        "visibility=shared".into(),
        "visibility=community".into(),
        "visibility=all".into(),
        "visibility=shared&member_status=pending".into(),
        "visibility=all&member_status=all&sort_key=name".into(),
        "member_status=rejected".into(),
        "os_distro=fedora&tag=t1&disk_format=qcow2".into(),
    ];
    for key in crate::image::list_query::SORT_KEYS {
        for dir in ["asc", "desc"] {
            q.push(format!("sort_key={key}&sort_dir={dir}"));
            q.push(format!(
                "sort_key={key}&sort_dir={dir}&visibility=all&os_distro=debian"
            ));
        }
    }
    q
}

/// The callers a list is made for.
fn callers() -> Vec<(&'static str, Caller)> {
    vec![
        ("member p1", member("p1")),
        ("member p3", member("p3")),
        ("member p7", member("p7")),
        ("admin", Caller::new(Some("p2".into()), None, &["admin"])),
        ("admin without project", Caller::new(None, None, &["admin"])),
        ("anonymous", Caller::new(None, None, &[])),
    ]
}

/// The queries of `shape`, with the v1 API's variations of it.
fn queries(shape: &str, id: &str) -> Vec<ListQuery> {
    let limits = ImageLimits::default();
    let base = ListQuery::parse(&shape.replace("{id}", id), &limits).unwrap();
    let mut not_public = base.clone();
    not_public.visibility = Some(crate::image::list_query::VisibilityFilter::NotPublic);
    let mut as_user = base.clone();
    as_user.admin_as_user = true;
    let mut changes = base.clone();
    changes.include_deleted = true;
    changes.filters.push(crate::image::list_query::Filter::Time(
        "updated_at",
        crate::image::list_query::CmpOp::Gt,
        Timestamp(1_500),
    ));
    vec![base, not_public, as_user, changes]
}

/// Every page of `q`, `limit` at a time, following the marker.
fn pages(repo: &ImageRepo, q: &ListQuery, c: &Caller, cap: i64, leads: bool) -> Vec<String> {
    let mut q = q.clone();
    q.limit = 7;
    let mut out = Vec::new();
    let mut marker: Option<Image> = None;
    loop {
        let (page, more) = repo
            .list_with_cap(&q, c, marker.as_ref(), cap, leads)
            .unwrap();
        out.extend(page.iter().map(|i| i.id.clone()));
        // Records here are small: a page that has more after it is full.
        if more {
            assert_eq!(page.len(), q.limit as usize, "a short page: {q:?}");
        }
        match (more, page.last()) {
            (true, Some(last)) => marker = repo.get_with_deleted(&last.id).unwrap(),
            _ => return out,
        }
        assert!(out.len() < 1000, "paging does not end: {q:?}");
    }
}

#[test]
fn walking_partitions_and_starting_from_a_filter_list_the_same_pages() {
    let db = MemoryDb::new();
    let all = catalogue(&db);
    let repo = ImageRepo::open(&db).unwrap();
    let mut nonempty = 0;
    for shape in query_shapes() {
        for q in queries(&shape, &all[3].id) {
            for (who, c) in callers() {
                let walk = pages(&repo, &q, &c, 0, false);
                let led = pages(&repo, &q, &c, 0, true);
                let filter = pages(&repo, &q, &c, i64::MAX, false);
                let chosen = pages(&repo, &q, &c, plan::PROBE_CAP, true);
                assert_eq!(walk, filter, "{shape} as {who}: {q:?}");
                assert_eq!(walk, led, "{shape} as {who}: {q:?}");
                assert_eq!(walk, chosen, "{shape} as {who}");
                let mut unique = walk.clone();
                unique.sort();
                unique.dedup();
                assert_eq!(unique.len(), walk.len(), "an image twice: {shape} as {who}");
                nonempty += usize::from(!walk.is_empty());
            }
        }
    }
    // The catalogue gives most of them something to list.
    assert!(nonempty > 700, "{nonempty}");
}

/// What in a plan reads more than a page: a scan of a table or index, or a
/// walk that sorts a whole partition.
/// `seek`: a walk after a marker in one direction, which must seek to it.
fn plan_faults(
    db: &MemoryDb,
    sql: &str,
    params: &[SqlValue],
    walk: bool,
    seek: bool,
) -> Vec<String> {
    let rows = db
        .execute(&format!("EXPLAIN QUERY PLAN {sql}"), params)
        .unwrap_or_else(|e| panic!("{e:?}: {sql}"));
    let lines: Vec<(i64, String)> = rows
        .rows
        .iter()
        .map(|r| {
            let parent = r.get(1).and_then(SqlValue::as_i64).unwrap_or(0);
            let detail = r
                .get(3)
                .and_then(SqlValue::as_str)
                .unwrap_or("")
                .to_string();
            (parent, detail)
        })
        .collect();
    let mut faults = Vec::new();
    for (parent, detail) in &lines {
        if detail.starts_with("SCAN ")
            && !detail.starts_with("SCAN (subquery")
            && detail != "SCAN CONSTANT ROW"
            // The page's own rows (limit + 1), to count their bytes.
            && detail != "SCAN w"
        {
            faults.push(format!("full scan: {detail}"));
        }
        let partition = detail.contains("INDEX images_v_")
            || detail.contains("INDEX images_o_")
            || (walk && detail.contains("INDEX images_f_"))
            || detail.contains("_l_");
        // A row value seeks past the marker's ties; ids have none.
        let seeks = detail.contains(")>(")
            || detail.contains(")<(")
            || detail.contains(" id>?)")
            || detail.contains(" id<?)");
        if seek && partition && !seeks {
            faults.push(format!("a walk from the start to the marker: {detail}"));
        }
        // The members arms find each image by id.
        let in_members_arm = lines
            .iter()
            .any(|(p, d)| p == parent && d.starts_with("SEARCH m USING "));
        if in_members_arm && detail.starts_with("SEARCH images ") && !detail.ends_with("(id=?)") {
            faults.push(format!("the members arm searches a partition: {detail}"));
        }
        // A walk sorts only the few rows of the members arm that is not
        // walked in order.
        if walk && detail == "USE TEMP B-TREE FOR ORDER BY" {
            let members_arm = lines.iter().any(|(p, d)| {
                p == parent && d.starts_with("SEARCH m ") && d.contains(" image_members_member ")
            });
            if !members_arm {
                faults.push("a walk sorts a whole partition".into());
            }
        }
    }
    if !faults.is_empty() {
        let plan: Vec<String> = lines.iter().map(|(p, d)| format!("  [{p}] {d}")).collect();
        faults.push(format!("plan:\n{}\nsql: {sql}", plan.join("\n")));
    }
    faults
}

#[test]
fn every_list_query_the_core_builds_is_served_by_an_index() {
    let db = MemoryDb::new();
    let all = catalogue(&db);
    let marker = all
        .iter()
        .find(|i| i.name.is_some() && i.size.is_some())
        .unwrap();
    let mut checked = 0;
    let mut faults = Vec::new();
    for shape in query_shapes() {
        for q in queries(&shape, &all[3].id) {
            if let Some((sql, params)) = plan::probe_statement(&q, plan::PROBE_CAP) {
                faults.extend(plan_faults(&db, &sql, &params, false, false));
                checked += 1;
            }
            for (who, c) in callers() {
                for (cap, leads) in [(0, false), (0, true), (i64::MAX, false)] {
                    let driver = plan::choose(&db, &q, &c, cap, leads).unwrap();
                    let walk = matches!(driver, plan::Driver::Walk(..));
                    let one_way = q.sort.iter().all(|(_, d)| *d == q.sort[0].1);
                    for m in [None, Some(marker)] {
                        let (sql, params) = sql::page_statement(&driver, &q, &c, m);
                        let seek = walk && one_way && m.is_some();
                        for f in plan_faults(&db, &sql, &params, walk, seek) {
                            faults.push(format!("{shape} as {who} ({driver:?}): {f}"));
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(
        faults.is_empty(),
        "{} faults, first:\n{}",
        faults.len(),
        faults[..faults.len().min(4)].join("\n")
    );
    assert!(checked > 3000, "{checked}");
}
