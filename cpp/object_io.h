// object_io: writing and reading whole objects in the layout of object_format.h.
//
//   writer (put, a task's return, a task's args)        reader (get)
//   ObjectWriter::begin  create + header/ids/stream      read_object  pin + header check
//   copy_buffer(i)       the large copies (no lock)      ObjectParts  stream and buffer spans
//   finish               nested holds, then seal
//
// Invariants:
//  - An object is visible (sealed) only with every byte written and a hold taken on each
//    nested ref, so a reader never sees a half-written object or a nested ref that dangles.
//  - An ObjectWriter that is not finished aborts its object when destroyed: an error (or a
//    Python exception) between begin and finish leaves nothing in the store.
//  - copy_buffer takes no lock and touches only this object's payload: callers release the
//    GIL around it (large numpy buffers), and no other step of the writer waits for Python.
//  - A failure written by the core (which cannot pickle) is a UTF-8 message with kFlagError |
//    kFlagRawMessage and an ErrorKind that names its exception class.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "object_format.h"
#include "status.h"
#include "store.h"

namespace ember {

/// What an object is, besides its bytes.
struct ObjectMeta {
  uint16_t flags = 0;                       ///< ObjectFlags
  ErrorKind error_kind = ErrorKind::kNone;  ///< with kFlagRawMessage: the exception class
  bool mine = true;  ///< its count belongs to this process (recorded in a worker's ledger)
  /// Only fulfil a promise (a stream's item): kNotFound, and nothing made, when `id` is not
  /// PENDING in the store (its consumer let it go).
  bool fulfil_only = false;
};

/// One object being written into the store.
class ObjectWriter {
 public:
  /// Creates object `id` sized for a pickle `stream`, out-of-band buffers of `buffer_lens`
  /// bytes and the `nested` refs pickled inside it, and writes all but the buffers. A PENDING
  /// `id` (a task's return) is fulfilled.
  static Result<ObjectWriter> begin(Store& store, const ObjectID& id, std::string_view stream,
                                    const std::vector<uint64_t>& buffer_lens,
                                    std::vector<ObjectID> nested, ObjectMeta meta = {});
  ObjectWriter(ObjectWriter&& other) noexcept;
  ObjectWriter& operator=(ObjectWriter&&) = delete;
  ObjectWriter(const ObjectWriter&) = delete;
  ObjectWriter& operator=(const ObjectWriter&) = delete;
  ~ObjectWriter();

  uint32_t num_buffers() const { return static_cast<uint32_t>(spans_.size()); }
  /// Copies buffer `i` (buffer_lens[i] bytes from `src`) into place. No lock: call it without
  /// the GIL for large buffers.
  void copy_buffer(uint32_t i, const uint8_t* src);
  /// Takes the object's hold on each nested ref and seals it; on failure the object is gone.
  Status finish();

 private:
  ObjectWriter(Store& store, const ObjectID& id, uint8_t* payload, std::vector<BufferSpan> spans,
               std::vector<ObjectID> nested);
  Store* store_;
  ObjectID id_;
  uint8_t* payload_;
  std::vector<BufferSpan> spans_;
  std::vector<ObjectID> nested_;
  bool open_;  ///< begun and neither finished nor moved from
};

/// A sealed object, pinned, split into its parts. The caller unpins `id` when done with the
/// bytes (or hands the pin to something that does).
struct ObjectParts {
  ObjectView view;                  ///< the whole payload
  ObjectHeader header;
  uint64_t stream_at;               ///< where the pickle stream starts in the payload
  std::vector<BufferSpan> buffers;  ///< the out-of-band buffers, from the payload start
};

/// Pins object `id` and reads its layout. kNotReady while it is not sealed, kNotFound when
/// absent, kInvalid (unpinned again) when its bytes are not an object of this format.
Result<ObjectParts> read_object(Store& store, const ObjectID& id);

/// Fulfils `id` (a task's promised return) with a failure the core raises: `message` for an
/// exception of class `kind`. False when the store cannot take it (full, closed): get()
/// then reports that instead.
bool write_error_message(Store& store, const ObjectID& id, ErrorKind kind,
                         std::string_view message);

}  // namespace ember
