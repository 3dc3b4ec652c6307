import Foundation
import NIOCore
import NIOHTTP1

extension SyncService {
    /// `POST /v2/pipeline` and `/v3/pipeline`: `{"baton", "requests": [...]}` →
    /// `{"baton", "base_url", "results": [...]}`.
    func pipeline(_ request: HTTPRequest) async -> HTTPResponse {
        guard let body = try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any],
            let requests = body["requests"] as? [Any]
        else {
            return .error(.badRequest, "the body must be a JSON object with a requests array", code: "INVALID_JSON")
        }
        let baton = body["baton"] as? String
        let job = UncheckedBox((requests, baton))
        let ticket = await self.barrier.enter(continuingTransaction: self.streams.isInTransaction(baton: baton))
        defer { ticket.leave() }
        do {
            let bytes = try await self.threads.runIfActive { () throws -> [UInt8] in
                let (requests, baton) = job.value
                return try self.runPipeline(requests, baton: baton)
            }
            return .json(.ok, bytes)
        } catch let error as HranaError {
            return .error(.badRequest, error.message, code: error.code)
        } catch {
            return .error(.serviceUnavailable, "server is shutting down", code: "UNAVAILABLE")
        }
    }

    private func runPipeline(_ requests: [Any], baton: String?) throws(HranaError) -> [UInt8] {
        let stream = try self.streams.acquire(baton: baton)
        let executor = HranaExecutor(stream: stream, didWrite: { self.changes.notify() }, writeLock: self.writeLock)
        var results: [Any] = []
        var close = false
        for requestJSON in requests {
            guard let object = requestJSON as? [String: Any] else {
                results.append(["type": "error", "error": HranaError.invalid("a request must be an object").json])
                continue
            }
            if object["type"] as? String == "close" {
                close = true
                results.append(["type": "ok", "response": ["type": "close"]])
                continue
            }
            do {
                results.append(["type": "ok", "response": try executor.request(object)])
            } catch {
                results.append(["type": "error", "error": error.json])
            }
        }
        let next = self.streams.release(stream, close: close)
        let response: [String: Any] = ["baton": next as Any? ?? NSNull(), "base_url": NSNull(), "results": results]
        return Self.serialize(response)
    }

    /// `POST /v3/cursor`: `{"baton", "batch"}` → a JSON line `{"baton", "base_url"}`, then one JSON line
    /// per entry (`step_begin`, `row`, `step_end`, `step_error`, `error`).
    func cursor(_ request: HTTPRequest) async -> HTTPResponse {
        guard let body = try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any] else {
            return .error(.badRequest, "the body must be a JSON object", code: "INVALID_JSON")
        }
        let job = UncheckedBox((body["batch"], body["baton"] as? String))
        let ticket = await self.barrier.enter(
            continuingTransaction: self.streams.isInTransaction(baton: body["baton"] as? String)
        )
        defer { ticket.leave() }
        do {
            let bytes = try await self.threads.runIfActive { () throws -> [UInt8] in
                let (batch, baton) = job.value
                return try self.runCursor(batch, baton: baton)
            }
            return HTTPResponse(status: .ok, contentType: "text/plain", body: .bytes(bytes))
        } catch let error as HranaError {
            return .error(.badRequest, error.message, code: error.code)
        } catch {
            return .error(.serviceUnavailable, "server is shutting down", code: "UNAVAILABLE")
        }
    }

    private func runCursor(_ batch: Any?, baton: String?) throws(HranaError) -> [UInt8] {
        let stream = try self.streams.acquire(baton: baton)
        let executor = HranaExecutor(stream: stream, didWrite: { self.changes.notify() }, writeLock: self.writeLock)
        var entries: [[String: Any]] = []
        do {
            _ = try executor.batch(
                batch,
                emit: { step, event in
                    switch event {
                    case nil: break
                    case .columns(let cols): entries.append(["type": "step_begin", "step": step, "cols": cols])
                    case .row(let row): entries.append(["type": "row", "row": row])
                    case .end(let affected, let rowid, _):
                        entries.append([
                            "type": "step_end", "affected_row_count": affected,
                            "last_insert_rowid": rowid.map { String($0) as Any } ?? NSNull(),
                        ])
                    }
                },
                stepError: { step, error in
                    entries.append(["type": "step_error", "step": step, "error": error.json])
                }
            )
        } catch {
            entries.append(["type": "error", "error": error.json])
        }
        let next = self.streams.release(stream, close: false)
        var out = Self.serialize(["baton": next as Any? ?? NSNull(), "base_url": NSNull()])
        for entry in entries {
            out.append(UInt8(ascii: "\n"))
            out.append(contentsOf: Self.serialize(entry))
        }
        out.append(UInt8(ascii: "\n"))
        return out
    }

    static func serialize(_ object: Any) -> [UInt8] {
        JSONWriter.serialize(object)
    }
}

/// Carries non-Sendable JSON values (immutable after parsing) onto a thread-pool thread.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
