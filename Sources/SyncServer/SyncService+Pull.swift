import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

extension SyncService {
    /// Poll interval for writes made by other processes while a pull long-polls.
    static let longPollInterval: Duration = .milliseconds(100)
    /// Pages per chunk written to the socket.
    static let pagesPerChunk = 64

    /// `POST /pull-updates`: a length-delimited header, then length-delimited pages.
    func pullUpdates(_ request: HTTPRequest) async -> HTTPResponse {
        let pull: PullUpdatesRequest
        do {
            pull = try PullUpdatesRequest(decoding: request.body)
        } catch {
            return .error(.badRequest, "invalid pull-updates request: \(error)", code: "INVALID_PROTOBUF")
        }
        // A pull is a reader from planning to its last byte: registered with the checkpoint barrier and
        // holding a SQLite read transaction, so neither this backend's checkpoint nor another process's
        // changes the main file or the WAL it reads. A long poll waits outside both.
        var reader: PullReader
        var plan: PullPlan
        do {
            reader = try await self.beginPull()
            plan = try await self.threads.runIfActive { try self.pages.plan(pull) }
            if !plan.isFullSnapshot, plan.pages.isEmpty, pull.longPollTimeoutMilliseconds > 0,
                pull.serverRevision.isEmpty
            {
                await reader.end(on: self.threads)
                let timeout = Duration.milliseconds(Int64(min(pull.longPollTimeoutMilliseconds, 300_000)))
                let deadline = ContinuousClock.now + timeout
                let start = plan.revision
                while ContinuousClock.now < deadline {
                    await self.changes.wait(timeout: min(Self.longPollInterval, deadline - ContinuousClock.now))
                    let latest = try await self.threads.runIfActive { self.pages.refresh() }
                    if latest != start { break }
                }
                reader = try await self.beginPull()
                plan = try await self.threads.runIfActive { try self.pages.plan(pull) }
            }
        } catch let error as PullError {
            return .error(HTTPResponseStatus(statusCode: error.status), error.message, code: "PULL_FAILED")
        } catch let error as HranaError {
            return .error(.internalServerError, "cannot read the database: \(error.message)", code: "PULL_FAILED")
        } catch {
            return .error(.serviceUnavailable, "server is shutting down", code: "UNAVAILABLE")
        }
        // A chunked bootstrap reads one revision in several requests (the first with a page selector,
        // the next ones pinned to its revision): keep checkpoints away meanwhile.
        if !pull.serverRevision.isEmpty || (!pull.serverPagesSelector.isEmpty && pull.clientRevision.isEmpty) {
            self.barrier.pin(plan.revision.description)
        }
        if plan.isFullSnapshot && !pull.clientRevision.isEmpty {
            self.logger.info(
                "client revision not in this history: sending a full snapshot",
                metadata: ["sync.client_revision": "\(pull.clientRevision)", "sync.revision": "\(plan.revision)"]
            )
        }
        let header = PullUpdatesResponseHeader(
            serverRevision: plan.revision.description,
            databaseSizePages: UInt64(plan.databaseSizePages)
        ).encodedDelimited()
        let finalPlan = plan
        let admission = reader
        return HTTPResponse(
            status: .ok,
            contentType: "application/protobuf",
            body: .stream { writer in
                defer { admission.endSoon() }
                let stall = self.configuration.pullWriteStall
                try await Self.write(header, to: writer, within: stall)
                var start = 0
                while start < finalPlan.pages.count {
                    let end = min(start + Self.pagesPerChunk, finalPlan.pages.count)
                    let range = start..<end
                    let chunk = try await self.threads.runIfActive { () throws -> [UInt8] in
                        let chunk = self.encodePages(finalPlan.pages[range])
                        // Only another process's checkpoint can reset the WAL under a pull: then
                        // the pages just read may be torn, so the response is cut off (the client
                        // retries) rather than completed.
                        guard self.pages.walStillHolds(finalPlan.walSalts) else {
                            throw PullError(status: 503, message: "the WAL was reset during the pull")
                        }
                        return chunk
                    }
                    try await Self.write(chunk, to: writer, within: stall)
                    start = end
                }
            }
        )
    }

    /// Writes `bytes`, or gives up when the client has not taken them within `bound`: a pull holds a
    /// read transaction and keeps checkpoints away, so a client that stops reading must not hold it
    /// until the connection's idle timeout. Giving up ends the response (the connection closes).
    static func write(_ bytes: [UInt8], to writer: ResponseBodyWriter, within bound: Duration) async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await writer.write(bytes)
                return true
            }
            group.addTask {
                try await Task.sleep(for: bound)
                return false
            }
            let written = try await group.next() ?? false
            group.cancelAll()
            guard written else { throw PullError(status: 408, message: "the client stopped reading the pull") }
        }
    }

    /// Admits a pull through the checkpoint barrier and opens its read transaction.
    private func beginPull() async throws -> PullReader {
        let ticket = await self.barrier.enter(continuingTransaction: false)
        let transaction = try await self.threads.runIfActive { try self.streams.beginRead() }
        return PullReader(ticket: ticket, transaction: transaction)
    }

    private func encodePages(_ pages: ArraySlice<(pageID: UInt32, location: PageLocation)>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(pages.count * (PageSource.pageSize + 8))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: PageSource.pageSize, alignment: 16)
        defer { buffer.deallocate() }
        for page in pages {
            self.pages.read(page.location, into: buffer)
            PageDataEncoder.append(pageID: UInt64(page.pageID), page: UnsafeRawBufferPointer(buffer), to: &out)
        }
        return out
    }
}

/// A pull's admission: its barrier ticket and its read transaction, released together (the
/// transaction first, so a checkpoint admitted next finds no reader).
final class PullReader: Sendable {
    let ticket: CheckpointBarrier.Ticket
    let transaction: ReadTransaction

    init(ticket: CheckpointBarrier.Ticket, transaction: ReadTransaction) {
        self.ticket = ticket
        self.transaction = transaction
    }

    /// Ends the transaction on a thread-pool thread (a ROLLBACK is blocking work), then leaves.
    func end(on threads: NIOThreadPool) async {
        try? await threads.runIfActive { self.transaction.end() }
        self.endSoon()  // leaves, and ends the transaction here if the pool could not
    }

    /// Ends both from a context that cannot wait (the end of a response body).
    func endSoon() {
        self.transaction.end()
        self.ticket.leave()
    }

    deinit { self.endSoon() }
}
