//! KMIP 1.4 §2.1.10: the ID Placeholder names the object the last succeeding item acted on. A
//! Locate that finds nothing, or a failed item under Batch Error Continuation Option
//! Continue, leaves no usable placeholder: the items after it that name no Unique Identifier
//! fail, and never act on an object an earlier item named.

mod common;

use common::*;
use ekm_kmip::tags::{self as t, op, reason};
use ekm_kmip::ttlv::Item;

/// A Request Message of `items` with Batch Error Continuation Option Continue.
fn continuing(items: Vec<(u32, Vec<Item>)>) -> Vec<u8> {
    let msg = ekm_kmip::ttlv::decode(&request((1, 4), items)).unwrap();
    let mut children = msg.children().to_vec();
    let header = children
        .iter_mut()
        .find(|c| c.tag == t::REQUEST_HEADER)
        .unwrap();
    let mut h = header.children().to_vec();
    h.push(Item::enumeration(t::BATCH_ERROR_CONTINUATION_OPTION, 1));
    *header = Item::structure(t::REQUEST_HEADER, h);
    ekm_kmip::ttlv::encode(&Item::structure(t::REQUEST_MESSAGE, children)).to_vec()
}

fn revoke() -> Vec<Item> {
    vec![Item::structure(
        t::REVOCATION_REASON,
        vec![Item::enumeration(t::REVOCATION_REASON_CODE, 6)],
    )]
}

fn exists(lab: &Lab, uid: &str) -> bool {
    lab.engine
        .data_key_info(&ekm_core::DataKeyId::parse(uid).unwrap())
        .is_ok()
}

#[test]
fn a_locate_that_finds_nothing_leaves_no_placeholder_for_the_items_after_it() {
    let lab = lab();
    let r = results(&lab.server.handle(
        Some(lab.vs0),
        &continuing(vec![
            (op::CREATE, create_payload(vec![])),
            (op::LOCATE, vec![attribute("Name", name("absent"))]),
            (op::REVOKE, revoke()),
            (op::DESTROY, vec![]),
        ]),
    ));
    assert_eq!(r.len(), 4, "{r:?}");
    assert_eq!(r[0].0, t::status::SUCCESS);
    let uid = uid_of(&r[0].2);
    assert_eq!(r[1].0, t::status::SUCCESS, "an empty Locate succeeds");
    for (i, item) in r.iter().enumerate().skip(2) {
        assert_eq!(
            (item.0, item.1),
            (t::status::OPERATION_FAILED, Some(reason::ITEM_NOT_FOUND)),
            "item {i} relied on a stale placeholder: {r:?}"
        );
    }
    assert!(
        exists(&lab, &uid),
        "the created key was destroyed through a stale placeholder"
    );
}

#[test]
fn a_failed_item_leaves_no_placeholder_for_the_items_after_it() {
    let lab = lab();
    let r = results(&lab.server.handle(
        Some(lab.vs0),
        &continuing(vec![
            (op::CREATE, create_payload(vec![])),
            // Fails: an unknown object.
            (
                op::GET,
                vec![Item::text(t::UNIQUE_IDENTIFIER, "ab".repeat(32))],
            ),
            (op::DESTROY, vec![]),
        ]),
    ));
    assert_eq!(r.len(), 3, "{r:?}");
    let uid = uid_of(&r[0].2);
    assert_eq!(r[1].1, Some(reason::ITEM_NOT_FOUND));
    assert_eq!(r[2].0, t::status::OPERATION_FAILED, "{r:?}");
    assert!(
        exists(&lab, &uid),
        "the created key was destroyed through a stale placeholder"
    );
}

#[test]
fn a_locate_that_finds_an_object_still_sets_the_placeholder() {
    let lab = lab();
    let r = results(&lab.server.handle(
        Some(lab.vs0),
        &request(
            (1, 4),
            vec![
                (
                    op::CREATE,
                    create_payload(vec![attribute("Name", name("vol7"))]),
                ),
                (op::LOCATE, vec![attribute("Name", name("vol7"))]),
                (op::DESTROY, vec![]),
            ],
        ),
    ));
    assert!(r.iter().all(|i| i.0 == t::status::SUCCESS), "{r:?}");
    assert!(!exists(&lab, &uid_of(&r[0].2)));
}
