package mediasvc

// Served is how many blocks this service has served to peers.
func (m *Service) Served() int64 { return m.served.Load() }

// Pulled is how many blocks this service has pulled through for peers
// (relay.go).
func (m *Service) Pulled() int64 { return m.relay.pulled.Load() }
