import Foundation
import NIOCore
import NIOHTTP1

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
        var plan: PullPlan
        do {
            plan = try await self.threads.runIfActive { try self.pages.plan(pull) }
            if !plan.isFullSnapshot, plan.pages.isEmpty, pull.longPollTimeoutMilliseconds > 0,
                pull.serverRevision.isEmpty
            {
                let timeout = Duration.milliseconds(Int64(min(pull.longPollTimeoutMilliseconds, 300_000)))
                let deadline = ContinuousClock.now + timeout
                let start = plan.revision
                while ContinuousClock.now < deadline {
                    await self.changes.wait(timeout: min(Self.longPollInterval, deadline - ContinuousClock.now))
                    let latest = try await self.threads.runIfActive { self.pages.refresh() }
                    if latest != start { break }
                }
                plan = try await self.threads.runIfActive { try self.pages.plan(pull) }
            }
        } catch let error as PullError {
            return .error(HTTPResponseStatus(statusCode: error.status), error.message, code: "PULL_FAILED")
        } catch {
            return .error(.serviceUnavailable, "server is shutting down", code: "UNAVAILABLE")
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
        return HTTPResponse(
            status: .ok,
            contentType: "application/protobuf",
            body: .stream { writer in
                try await writer.write(header)
                var start = 0
                while start < finalPlan.pages.count {
                    let end = min(start + Self.pagesPerChunk, finalPlan.pages.count)
                    let range = start..<end
                    let chunk = try await self.threads.runIfActive { self.encodePages(finalPlan.pages[range]) }
                    try await writer.write(chunk)
                    start = end
                }
            }
        )
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
