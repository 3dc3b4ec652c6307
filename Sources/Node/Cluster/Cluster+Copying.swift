import Foundation
import Logging
import Membership
import ServerSupport

extension Cluster {
    // MARK: receiving side

    /// Copies `name`'s files from the member at `from` into staging (appending to what is there).
    func precopy(_ name: String, from: String) async throws(NodeError) -> Int {
        var copied = 0
        for kind in NamespaceFiles.Kind.allCases {
            do {
                copied += try await self.stage(name, kind, from: from, truncate: false)
            } catch  where kind == .history {
                // A holder that predates the change history has none to give; the transfer's digests decide.
                continue
            }
        }
        return copied
    }

    /// Appends to the staged copy of `name`'s `kind` file what the member at `from` has beyond it
    /// (emptying the copy first with `truncate`). Returns the bytes copied.
    private func stage(
        _ name: String,
        _ kind: NamespaceFiles.Kind,
        from: String,
        truncate: Bool
    )
        async throws(NodeError) -> Int
    {
        guard let peers else { throw NodeError(.badRequest, "not clustered", status: 400) }
        let handle: FileHandle
        do {
            handle = try self.files.openStaging(name, kind, truncate: truncate)
        } catch {
            throw NodeError.io("cannot stage \(name): \(error)")
        }
        defer { try? handle.close() }
        let offset = NamespaceFiles.size(self.files.stagingPath(name, kind))
        let download = try await peers.download(
            from,
            "/_peer/v1/namespaces/\(name)/files/\(kind.rawValue)?offset=\(offset)",
            into: handle
        )
        if kind == .db { self.recordStagedBase(name, base: download.historyBase, fromStart: offset == 0) }
        self.metrics.handoffBytes.increment(by: Int64(download.written))
        return download.written
    }

    /// Brings `name`'s staging to the files `expected` describes, copying from the member at
    /// `from`: the tail first; then, for a database file a checkpoint changed, only the pages the
    /// change history names; the whole file last. Throws when a file cannot be made to match.
    func receiveVerified(
        _ name: String,
        expected: [NamespaceFiles.Kind: NamespaceFiles.Digest],
        from: String
    ) async throws(NodeError) {
        for (kind, want) in expected.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            var verified = false
            for attempt in kind == .db ? [0, 1, 2] : [0, 2] {
                let path = self.files.stagingPath(name, kind)
                if attempt == 1 {
                    guard await self.catchUpStagedDatabase(name, from: from) else { continue }
                } else {
                    let truncate = attempt == 2 || NamespaceFiles.size(path) > want.size
                    if truncate || NamespaceFiles.size(path) < want.size
                        || !FileManager.default.fileExists(atPath: path)
                    {
                        _ = try await self.stage(name, kind, from: from, truncate: truncate)
                    }
                }
                let digest = try? await BlockingIO.run { () throws(NodeError) in
                    do { return try NamespaceFiles.digest(path) } catch { throw NodeError.io("\(error)") }
                }
                if digest == want {
                    verified = true
                    break
                }
            }
            guard verified else {
                self.files.discardStaging(name)
                throw NodeError(.io, "the copy of \(name)'s \(kind.rawValue) does not match its digest", status: 500)
            }
        }
        // A kind the sender has none of (an older sender's history) is not installed stale.
        for kind in NamespaceFiles.Kind.allCases where expected[kind] == nil {
            try? FileManager.default.removeItem(atPath: self.files.stagingPath(name, kind))
        }
    }

    var advertisedPeerAddress: String {
        HostPort(
            host: self.configuration.advertisedHost,
            port: self.boundPeerPort ?? self.configuration.peerAddress.port
        ).description
    }

}
