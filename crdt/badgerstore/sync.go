package badgerstore

import "fmt"

// Sync makes every batch committed so far durable, as if each had been
// committed with Durable: the segments' bytes are written and fsynced and
// the synced mark recorded, then badger's active write-ahead file is synced
// (DB.Sync) and the files of the memtables set aside for flushing are
// fsynced (syncFlushingWALs: a batch committed before a memtable swap is in
// one of them, or already in a flushed table, which badger msyncs and
// records in its synced manifest before it removes the file). A bulk
// writer (the archive import) commits its batches without Durable and
// calls Sync once, before it reports success (docs/design.md §2).
func (s *Store) Sync() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.seg != nil {
		s.commitMu.Lock()
		err := s.seg.sync()
		if err == nil {
			err = s.db.Update(s.recordSynced)
		}
		s.commitMu.Unlock()
		if err != nil {
			return fmt.Errorf("sync segments: %w", err)
		}
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if err := s.syncFlushingWALs(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}
