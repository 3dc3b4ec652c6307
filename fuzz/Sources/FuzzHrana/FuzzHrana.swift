import CSQLite
import Foundation
import SQLiteSupport

/// One database for the whole run, prepared like a backend's (WAL, guard, no checkpoints).
nonisolated(unsafe) let fuzzDatabase: (SyncDatabase, SQLiteConnection, StreamRegistry) = {
    let path = NSTemporaryDirectory() + "fuzz-hrana-\(getpid()).db"
    for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
    let database = SyncDatabase(path: path, synchronousFull: false)
    let anchor = try! database.prepare()
    let registry = StreamRegistry(limits: .init()) { () throws(SQLiteError) in
        let connection = try database.open()
        // Bounds what one input may run (the fuzzer must not find a slow query and stall).
        sqlite3_progress_handler(connection.handle, 10_000, { _ in 1 }, nil)
        return connection
    }
    return (database, anchor, registry)
}()

let fuzzWriteLock = WriteLock()

/// libFuzzer entry for a Hrana pipeline body: parsed as JSON and executed request by request on a
/// pooled stream of a real database, as `/v2/pipeline` does, with the response serialized. Nothing
/// may trap, and the stream's connection comes back usable.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHrana(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let (_, _, registry) = fuzzDatabase
    guard let body = try? JSONSerialization.jsonObject(with: Data(bytes: data, count: size)) as? [String: Any],
        let requests = body["requests"] as? [Any]
    else { return 0 }
    guard let stream = try? registry.acquire(baton: body["baton"] as? String) else { return 0 }
    let executor = HranaExecutor(stream: stream, didWrite: {}, writeLock: fuzzWriteLock)
    var results: [Any] = []
    for request in requests {
        guard let object = request as? [String: Any] else { continue }
        do {
            results.append(try executor.request(object))
        } catch {
            results.append(error.json)
        }
    }
    _ = registry.release(stream, close: true)
    _ = JSONWriter.serialize(["results": results])
    return 0
}
