//! A real DNS server for the tests: hickory-server on 127.0.0.1 with a free port, serving
//! one zone the test changes at will.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::proto::rr::rdata::{A, AAAA, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType, RrKey};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use hickory_server::Server;
use rocket::tokio::net::{TcpListener, UdpSocket};

pub struct TestDns {
    pub addr: SocketAddr,
    zone: Arc<InMemoryZoneHandler>,
    server: Option<Server<Catalog>>,
    serial: AtomicU32,
}

impl TestDns {
    /// Serves `origin` (e.g. "test.") on 127.0.0.1, UDP and TCP on the same free port.
    pub async fn start(origin: &str) -> TestDns {
        let origin = Name::from_str(origin).unwrap();
        let mut zone =
            InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        let soa = SOA::new(
            Name::from_str("ns.test.").unwrap(),
            Name::from_str("admin.test.").unwrap(),
            1,
            60,
            60,
            60,
            1, // negative answers may be cached for 1 s only
        );
        zone.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1);
        let zone = Arc::new(zone);
        let mut catalog = Catalog::new();
        catalog.upsert(
            LowerName::from(&origin),
            vec![zone.clone() as Arc<dyn ZoneHandler>],
        );

        // Same port for UDP and TCP; retry if TCP's is taken.
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 4096);
        TestDns {
            addr,
            zone,
            server: Some(server),
            serial: AtomicU32::new(2),
        }
    }

    /// Replaces every A and AAAA record of `name` with `addrs` (none: the name is gone).
    pub async fn set(&self, name: &str, ttl: u32, addrs: &[&str]) {
        let name = Name::from_str(name).unwrap();
        {
            let mut records = self.zone.records_mut().await;
            for t in [RecordType::A, RecordType::AAAA] {
                records.remove(&RrKey::new(LowerName::from(&name), t));
            }
        }
        for a in addrs {
            let rdata = match a.parse::<IpAddr>().unwrap() {
                IpAddr::V4(v4) => RData::A(A(v4)),
                IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
            };
            let serial = self.serial.fetch_add(1, Ordering::SeqCst);
            self.zone
                .upsert(Record::from_rdata(name.clone(), ttl, rdata), serial)
                .await;
        }
    }

    /// Stops answering (the sockets close).
    pub async fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.shutdown_gracefully().await;
        }
    }

    /// `[default.allow.dns]` pointing at this server.
    pub fn dns_toml(&self, extra: &str) -> String {
        format!(
            "[default.allow.dns]\nnameservers = [\"{}\"]\ntimeout_secs = 1\n{extra}\n",
            self.addr
        )
    }
}
