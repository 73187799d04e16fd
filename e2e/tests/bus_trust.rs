//! The bus as a trust boundary, with every process running: whoever reaches the bus port
//! without the payments key — an outsider speaking the documented protocol, a guessed key,
//! another service's stolen key — cannot make an unpaid order complete.

use std::time::Duration;

use tix_api::events::{Envelope, Event, PaymentCreated};
use tix_bus_client::{BusKey, Error};
use tix_testkit::events::{RawPeer, connect_as, frames};
use tix_testkit::{ALL, Api, Stack, User, eventually};

const SETTLE: Duration = Duration::from_secs(15);

fn text(frame: &bytes::Bytes) -> String {
    String::from_utf8_lossy(frame).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_payment_is_refused_and_the_order_stays_unpaid() {
    let stack = Stack::start(&ALL);
    let api = Api::new(&stack);
    let seller = User::new("seller");
    let (victim, buyer) = (User::new("freeloader"), User::new("buyer"));
    let target = api.create_ticket(&seller, "Front row", 80.0).await;
    let (s, order) = api.reserve(&victim, &target).await;
    assert_eq!(s, 201, "{order}");
    let order_id = order["id"].as_str().unwrap().to_string();

    // What a payment of that order looks like on the bus, with payments as producer.
    let forged = Envelope::new(
        "payments",
        Event::PaymentCreated(PaymentCreated {
            id: "pay-forged".into(),
            order_id: order_id.clone(),
            charge_id: "ch_forged".into(),
        }),
    );
    let payload = forged.to_json();
    let publish = |corr: u64| {
        frames(&[
            b"PUB",
            &corr.to_le_bytes(),
            forged.id.as_bytes(),
            b"payment:created",
            payload.as_ref(),
        ])
    };

    // An outsider with a 40-line script: hello without a key, then the publish.
    let mut outsider = RawPeer::connect(&stack.bus.endpoint).await;
    outsider
        .send_raw(frames(&[
            b"HELLO",
            &1u64.to_le_bytes(),
            br#"{"client":"payments","heartbeatMs":500}"#,
        ]))
        .await;
    let answer = outsider.recv_raw().await;
    assert_eq!(text(&answer[0]), "ERR", "{answer:?}");
    outsider.send_raw(publish(2)).await;
    let answer = outsider.recv_raw().await;
    assert_eq!(text(&answer[0]), "ERR", "{answer:?}");
    assert!(text(&answer[2]).contains("no session"), "{answer:?}");

    // A guessed key for payments.
    let mut guesser = RawPeer::connect(&stack.bus.endpoint).await;
    let (_, answer) = guesser.authenticate("payments", &BusKey::generate()).await;
    assert_eq!(text(&answer[2]), "authentication failed");
    assert!(
        guesser.closed_within(Duration::from_secs(3)).await,
        "a failed handshake ends the connection"
    );

    // Another service's real key: neither its subject nor its name is payments'.
    for thief in ["tickets", "orders"] {
        let key = BusKey::from_hex(&stack.bus.key(thief)).unwrap();
        let stolen = connect_as(&stack.bus.endpoint, thief, key).await;
        let r = stolen
            .publish(forged.id.clone(), "payment:created", payload.clone())
            .await;
        match r {
            Err(Error::Refused(m)) => assert!(m.contains("may not publish"), "{m}"),
            other => panic!("{thief}'s key published a payment: {other:?}"),
        }
        stolen.close().await;
    }

    // A genuine purchase goes through meanwhile: once it is complete, anything stored
    // before it would have been applied too.
    let other = api.create_ticket(&seller, "Balcony", 20.0).await;
    let (s, paid) = api.reserve(&buyer, &other).await;
    assert_eq!(s, 201, "{paid}");
    let paid_id = paid["id"].as_str().unwrap().to_string();
    let (s, payment) = api.pay(&buyer, &paid_id, "tok_visa").await;
    assert_eq!(s, 201, "{payment}");
    eventually("the genuine order is complete", SETTLE, || async {
        api.order(&buyer, &paid_id).await["status"] == "complete"
    })
    .await;

    assert_eq!(api.order(&victim, &order_id).await["status"], "created");
    let operator = BusKey::from_hex(&stack.bus.key("operator")).unwrap();
    let operator = connect_as(&stack.bus.endpoint, "operator", operator).await;
    let stats = operator.stats().await.unwrap();
    assert_eq!(
        stats.subjects.get("payment:created"),
        Some(&1),
        "only the genuine payment is in the log: {stats:?}"
    );
}
