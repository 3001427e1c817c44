#![cfg(feature = "tokio")]
use executor_bridge::{Bridge, Tokio};
use std::time::{Duration, Instant};

#[test]
fn plain() {
    let b = Bridge::new(Tokio::new());
    assert_eq!(b.run(|| async { tokio::time::sleep(Duration::from_millis(10)).await; 5 }), 5);
    let t = Instant::now();
    let v = b.run(|| async {
        let (a, b2, c) = tokio::join!(tokio::time::sleep(Duration::from_millis(200)), tokio::time::sleep(Duration::from_millis(200)), tokio::time::sleep(Duration::from_millis(200)));
        let _ = (a, b2, c); 1 });
    assert_eq!(v, 1);
    assert!(t.elapsed() < Duration::from_millis(500));
    let e = b.try_run(|| async { panic!("x{}", 1) }).map(|()| ()).unwrap_err();
    assert_eq!(e.to_string(), "the bridged future panicked: x1");
    let e = b.run_timeout(Duration::from_millis(50), || async { tokio::time::sleep(Duration::from_secs(5)).await }).unwrap_err();
    assert!(e.is_timeout());
    let v: Vec<u64> = b.iter(|| futures_lite::stream::iter(0..1000u64)).collect();
    assert_eq!(v.len(), 1000);
}

#[tokio::test]
async fn current_thread() {
    let b = Bridge::new(Tokio::new());
    assert_eq!(b.run(|| async { tokio::time::sleep(Duration::from_millis(10)).await; 5 }), 5);
    let v: Vec<u64> = b.iter(|| futures_lite::stream::iter(0..10u64)).collect();
    assert_eq!(v.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_lifo() {
    let b = Bridge::new(Tokio::new());
    tokio::spawn(async move {
        let h = tokio::spawn(async { 7 });
        let v = b.run(move || async move { h.await.unwrap() });
        assert_eq!(v, 7);
        let b2 = b.clone();
        let n = b.run(move || async move { b2.run(|| async { 3 }) });
        assert_eq!(n, 3);
    }).await.unwrap();
}
