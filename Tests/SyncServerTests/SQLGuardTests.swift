import Foundation
import SQLiteSupport
import Testing

@testable import SyncServer

@Suite("SQL guard")
struct SQLGuardTests {
    @Test func leadingKeywordSkipsCommentsAndSpace() {
        #expect(SQLGuard.leadingKeyword("  -- hi\n /* x */ vacuum") == "VACUUM")
        #expect(SQLGuard.leadingKeyword("select 1") == "SELECT")
        #expect(SQLGuard.leadingKeyword("   ") == "")
    }

    @Test func refusesCheckpointsJournalChangesVacuumAndAttach() throws {
        let path = NSTemporaryDirectory() + "guard-" + UUID().uuidString + ".db"
        let database = SyncDatabase(path: path, synchronousFull: false)
        _ = try database.prepare()
        let connection = try database.open()
        for sql in [
            "PRAGMA wal_checkpoint(TRUNCATE)", "PRAGMA main.journal_mode=DELETE", "ATTACH 'x.db' AS x",
            "PRAGMA wal_autocheckpoint=100",
        ] {
            #expect(throws: SQLiteError.self, "\(sql)") { try connection.execute(sql) }
        }
        #expect(throws: HranaError.self) { try SQLGuard.check("VACUUM") }
        #expect(throws: HranaError.self) { try SQLGuard.check("vacuum into '/tmp/x.db'") }
        // Reading the journal mode is harmless and allowed.
        #expect(try connection.query("PRAGMA journal_mode") == [[.text("wal")]])
        #expect(SQLGuard.isAlterAddColumn("ALTER TABLE t ADD COLUMN z TEXT"))
        #expect(!SQLGuard.isAlterAddColumn("ALTER TABLE t RENAME TO u"))
    }
}
