//! Unit tests of the parent module.

use super::*;
use http::StatusCode;

fn parse(q: &str) -> ApiResult<ListQuery> {
    ListQuery::parse(q, &ImageLimits::default())
}

fn bad(q: &str) -> bool {
    parse(q).map_err(|e| e.status) == Err(StatusCode::BAD_REQUEST)
}

#[test]
fn defaults() {
    let q = parse("").unwrap();
    assert_eq!(q.limit, 25);
    assert_eq!(
        q.sort,
        vec![("created_at", SortDir::Desc), ("id", SortDir::Desc)]
    );
    assert_eq!(
        q.member_status,
        MemberStatusFilter::Only(MemberStatus::Accepted)
    );
    assert!(!q.os_hidden);
    assert_eq!(q.first_link(), "/v2/images");
}

#[test]
fn limit_is_validated_and_capped() {
    assert_eq!(parse("limit=5000").unwrap().limit, 1000);
    assert_eq!(parse("limit=0").unwrap().limit, 0);
    assert!(bad("limit=-1"));
    assert!(bad("limit=ten"));
}

#[test]
fn classic_sort() {
    let q = parse("sort_key=name&sort_key=size&sort_dir=asc").unwrap();
    assert_eq!(
        q.sort,
        vec![
            ("name", SortDir::Asc),
            ("size", SortDir::Asc),
            ("created_at", SortDir::Asc),
            ("id", SortDir::Asc)
        ]
    );
    let q = parse("sort_key=name&sort_dir=asc&sort_key=size&sort_dir=desc").unwrap();
    assert_eq!(q.sort[1], ("size", SortDir::Desc));
    assert!(bad(
        "sort_key=name&sort_key=size&sort_dir=asc&sort_dir=desc&sort_dir=asc"
    ));
    assert!(bad("sort_key=owner"));
    assert!(bad("sort_dir=up"));
}

#[test]
fn new_sort_syntax() {
    let q = parse("sort=name:asc,size").unwrap();
    assert_eq!(q.sort[0], ("name", SortDir::Asc));
    assert_eq!(q.sort[1], ("size", SortDir::Desc));
    assert!(bad("sort=name:asc&sort_key=size"));
    assert!(bad("sort=bogus:asc"));
    assert!(bad("sort=name:sideways"));
}

#[test]
fn filters() {
    let q = parse("name=in:a,%22b,c%22&status=eq:active&tag=x&tag=y&size_min=10&os_distro=debian&protected=true").unwrap();
    assert_eq!(
        q.filters,
        vec![
            Filter::In("name", vec!["a".into(), "b,c".into()]),
            Filter::Equals("status", "active".into()),
            Filter::Tag("x".into()),
            Filter::Tag("y".into()),
            Filter::Range("size", CmpOp::Gte, 10),
            Filter::Property("os_distro".into(), "debian".into()),
            Filter::Equals("protected", "1".into()),
        ]
    );
    assert!(bad("name=like:foo"));
    assert!(bad("size_max=big"));
    assert!(bad("protected=yes"));
    assert!(bad("os_hidden=maybe"));
    assert!(bad("visibility=secret"));
    assert!(bad("member_status=maybe"));
    assert!(bad("changes-since=2020-01-01"));
    assert!(bad("name=in:%22open"));
}

#[test]
fn time_filters() {
    let q = parse("created_at=gte:2020-01-01T00:00:00Z&updated_at=2020-01-01T00:00:00%2B00:00")
        .unwrap();
    assert_eq!(
        q.filters,
        vec![
            Filter::Time("created_at", CmpOp::Gte, Timestamp(1_577_836_800)),
            Filter::Time("updated_at", CmpOp::Eq, Timestamp(1_577_836_800)),
        ]
    );
    assert!(bad("created_at=gt:yesterday"));
    assert!(bad("created_at=around:2020-01-01"));
}

#[test]
fn links_carry_every_parameter() {
    let q = parse("limit=2&tag=a&tag=b&sort_key=name&marker=m1").unwrap();
    assert_eq!(
        q.first_link(),
        "/v2/images?limit=2&tag=a&tag=b&sort_key=name"
    );
    assert_eq!(
        q.next_link("m2"),
        "/v2/images?limit=2&tag=a&tag=b&sort_key=name&marker=m2"
    );
}

#[test]
fn too_many_filters_is_a_400_naming_the_limit() {
    let many: Vec<String> = (0..999).map(|i| format!("tag=t{i}")).collect();
    let err = ListQuery::parse(&many.join("&"), &ImageLimits::default()).unwrap_err();
    assert_eq!(err.status, http::StatusCode::BAD_REQUEST);
    assert!(err.message.contains("at most 100"), "{}", err.message);
    let names: Vec<String> = (0..200).map(|i| format!("n{i}")).collect();
    let q = format!("name=in:{}", names.join(","));
    assert!(ListQuery::parse(&q, &ImageLimits::default()).is_err());
    assert!(ListQuery::parse("tag=a&tag=b&name=in:x,y", &ImageLimits::default()).is_ok());
}
