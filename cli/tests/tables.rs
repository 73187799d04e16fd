//! Tables as people see them: wide characters (CJK, emoji) take two cells and columns
//! stay aligned; rows are cut to the width (`COLUMNS` when stdout is not a terminal),
//! never wrapped; ids and prices are never cut; pipes without `COLUMNS` get whole rows.

mod common;

use common::{NOT_FOUND, fake_api, run, ticket, tix};

fn marketplace() -> String {
    let mut reserved = ticket(
        "0193a003",
        "Opera 🎭 La Traviata, Teatro alla Scala",
        12_000,
        "Giulia",
    );
    reserved.order_id = Some("o1".into());
    let list = serde_json::to_string(&[
        ticket("0193a001", "東京ドーム ライブ 2027", 880_000, "さくら"),
        ticket("0193a002", "🎸🎸 Rock night", 2_550, "Bob"),
        reserved,
        ticket("0193a004", "Jazz", 900, "Ann"),
    ])
    .unwrap();
    let (api, _) = fake_api(move |r| match r.path.as_str() {
        "/api/tickets" | "/api/tickets?all=true" => (200, list.clone()),
        _ => (NOT_FOUND.0, NOT_FOUND.1.into()),
    });
    api
}

#[test]
fn wide_characters_align_and_rows_are_cut_to_the_width() {
    let api = marketplace();
    let dir = tempfile::tempdir().unwrap();
    let mut c = tix(&api, dir.path());
    c.env("COLUMNS", "60");
    let r = run(c, &["tickets", "list", "--all"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // 60 cells: CJK characters and emoji count two each, the titles are cut with "…",
    // everything else whole and every column starting at the same cell on every row.
    assert_eq!(
        r.stdout,
        "ID        TITLE                  PRICE      SELLER  STATE\n\
         0193a001  東京ドーム ライブ…     $8,800.00  さくら  on sale\n\
         0193a002  🎸🎸 Rock night        $25.50     Bob     on sale\n\
         0193a003  Opera 🎭 La Traviata…  $120.00    Giulia  reserved\n\
         0193a004  Jazz                   $9.00      Ann     on sale\n"
    );
}

#[test]
fn without_a_width_a_pipe_gets_whole_rows() {
    let api = marketplace();
    let dir = tempfile::tempdir().unwrap();
    let r = run(tix(&api, dir.path()), &["tickets", "list", "--all"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "ID        TITLE                                    PRICE      SELLER  STATE\n\
         0193a001  東京ドーム ライブ 2027                   $8,800.00  さくら  on sale\n\
         0193a002  🎸🎸 Rock night                          $25.50     Bob     on sale\n\
         0193a003  Opera 🎭 La Traviata, Teatro alla Scala  $120.00    Giulia  reserved\n\
         0193a004  Jazz                                     $9.00      Ann     on sale\n"
    );
    // --json is the API's document, seller ids included, whatever the width.
    let mut c = tix(&api, dir.path());
    c.env("COLUMNS", "20");
    let r = run(c, &["--json", "tickets", "list"], None);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["title"], "東京ドーム ライブ 2027");
    assert_eq!(v[0]["userId"], "user-さくら");
    assert_eq!(v[0]["sellerName"], "さくら");
}
