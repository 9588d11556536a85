package sqlite

// RelaySupported tells the tests whether this platform has a relay.
const RelaySupported = relaySupported
