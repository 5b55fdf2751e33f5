//! Awkward lock names (braces, non-ASCII, the longest allowed) behave like
//! any other name on a single server and over 5 Redlock masters. Sentinel
//! and Cluster run the same table in their own suites.

mod name_table;
mod support;

use std::time::Duration;

use latchkey::Client;
use support::RedisServer;

#[test]
fn awkward_names_work_on_a_single_server() {
    let server = RedisServer::start();
    name_table::check_every_name(&Client::open(&server.url()).unwrap());
}

#[test]
fn awkward_names_work_over_five_redlock_masters() {
    let servers: Vec<RedisServer> = (0..5).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let client = Client::redlock_builder(&urls)
        // Fresh test servers: no restart to wait out.
        .redlock_restart_delay(Duration::ZERO)
        .command_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    name_table::check_every_name(&client);
}
