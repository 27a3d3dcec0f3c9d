// object_format: the byte layout of a stored object's payload.
//
//   [ObjectHeader][nrefs x ObjectID][nbuf x BufferSpan][pickle stream][pad][buffer 0]...
//
// Invariants:
//  - Each out-of-band buffer starts 64-byte aligned, so numpy views on it are aligned.
//  - The ids listed after the header are ObjectRefs pickled inside the object. The object
//    holds one count on each (taken before it is sealed) and the store releases them when
//    the object is freed, so a nested ref never dangles.
//  - kFlagError marks an object that is a failure to raise on get (a task error, a crash);
//    kFlagRawMessage marks one whose "pickle stream" is a UTF-8 message written by C++
//    (which cannot pickle), to be wrapped in the exception class named by `error_kind`.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "object_table.h"

namespace ember {

inline constexpr uint32_t kObjectMagic = 0x454d424f;  // "OBME"

enum ObjectFlags : uint16_t {
  kFlagError = 1,       ///< get raises the stored value instead of returning it
  kFlagRawMessage = 2,  ///< the stream is a UTF-8 message, not a pickle
};

/// Ids whose low word has this bit are chosen by name (the actor-name registry): the store's
/// sequence (Store::new_id) starts at 1 and never reaches it.
inline constexpr uint64_t kNamedIdBit = uint64_t{1} << 63;

/// Which exception class a kFlagRawMessage object becomes.
enum class ErrorKind : uint16_t {
  kNone = 0,
  kWorkerCrashed = 1,
  kTaskCancelled = 2,
  kObjectLost = 3,
  kOutOfMemory = 4,
  kActorDied = 5,
  kActorUnavailable = 6,  ///< a call in flight when its actor died, and the actor restarts
  kPlacementGroupRemoved = 7,  ///< the task's placement group was removed before it finished
};

struct ObjectHeader {
  uint32_t magic;
  uint16_t flags;
  uint16_t error_kind;
  uint32_t nrefs;
  uint32_t nbuf;
  uint64_t stream_len;
};
static_assert(sizeof(ObjectHeader) == 24);

struct BufferSpan {
  uint64_t offset;  ///< from the payload start
  uint64_t len;
};

inline uint64_t align64(uint64_t x) { return (x + 63) & ~uint64_t{63}; }

/// Where everything goes for an object with these counts; computed the same way on write
/// and read.
struct ObjectLayout {
  uint64_t refs_at;
  uint64_t spans_at;
  uint64_t stream_at;
  uint64_t end_of_stream;

  ObjectLayout(uint32_t nrefs, uint32_t nbuf, uint64_t stream_len)
      : refs_at(sizeof(ObjectHeader)),
        spans_at(refs_at + uint64_t{nrefs} * sizeof(ObjectID)),
        stream_at(spans_at + uint64_t{nbuf} * sizeof(BufferSpan)),
        end_of_stream(stream_at + stream_len) {}
};

/// Reads the header of a payload written in this format.
inline ObjectHeader read_header(const uint8_t* payload) {
  ObjectHeader h;
  std::memcpy(&h, payload, sizeof h);
  return h;
}

/// The nested ref `i` of a payload.
inline ObjectID nested_ref(const uint8_t* payload, uint32_t i) {
  ObjectID id;
  std::memcpy(&id, payload + sizeof(ObjectHeader) + i * sizeof(ObjectID), sizeof id);
  return id;
}

}  // namespace ember
