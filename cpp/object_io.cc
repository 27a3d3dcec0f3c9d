// object_io: writing and reading whole objects in the layout of object_format.h.
#include "object_io.h"

#include <cstring>
#include <utility>

namespace ember {

Result<ObjectWriter> ObjectWriter::begin(Store& store, const ObjectID& id, std::string_view stream,
                                         const std::vector<uint64_t>& buffer_lens,
                                         std::vector<ObjectID> nested, ObjectMeta meta) {
  const auto nbuf = static_cast<uint32_t>(buffer_lens.size());
  const auto nrefs = static_cast<uint32_t>(nested.size());
  ObjectLayout layout(nrefs, nbuf, stream.size());
  std::vector<BufferSpan> spans(nbuf);
  uint64_t at = layout.end_of_stream;
  for (uint32_t i = 0; i < nbuf; ++i) {
    at = align64(at);
    spans[i] = BufferSpan{at, buffer_lens[i]};
    at += buffer_lens[i];
  }
  Result<uint8_t*> dst = store.create_object(id, at, nrefs > 0, meta.mine, meta.fulfil_only);
  if (!dst.ok()) return dst.status();
  uint8_t* p = *dst;
  ObjectHeader h{kObjectMagic, meta.flags, static_cast<uint16_t>(meta.error_kind), nrefs, nbuf,
                 stream.size()};
  std::memcpy(p, &h, sizeof h);
  if (nrefs > 0) std::memcpy(p + layout.refs_at, nested.data(), nrefs * sizeof(ObjectID));
  if (nbuf > 0) std::memcpy(p + layout.spans_at, spans.data(), nbuf * sizeof(BufferSpan));
  if (!stream.empty()) std::memcpy(p + layout.stream_at, stream.data(), stream.size());
  return ObjectWriter(store, id, p, std::move(spans), std::move(nested));
}

ObjectWriter::ObjectWriter(Store& store, const ObjectID& id, uint8_t* payload,
                           std::vector<BufferSpan> spans, std::vector<ObjectID> nested)
    : store_(&store), id_(id), payload_(payload), spans_(std::move(spans)),
      nested_(std::move(nested)), open_(true) {}

ObjectWriter::ObjectWriter(ObjectWriter&& other) noexcept
    : store_(other.store_), id_(other.id_), payload_(other.payload_),
      spans_(std::move(other.spans_)), nested_(std::move(other.nested_)), open_(other.open_) {
  other.open_ = false;
}

ObjectWriter::~ObjectWriter() {
  if (open_) store_->abort(id_);
}

void ObjectWriter::copy_buffer(uint32_t i, const uint8_t* src) {
  store_->copy_in(payload_ + spans_[i].offset, src, spans_[i].len);
}

Status ObjectWriter::finish() {
  open_ = false;
  // The object's hold on each nested ref, taken before it becomes visible. A ref whose object
  // is already gone is listed but holds nothing (its release finds no entry).
  for (const ObjectID& n : nested_) (void)store_->add_ref(n, /*mine=*/false);
  Status st = store_->seal(id_);
  if (!st.ok()) store_->abort(id_);
  return st;
}

Result<ObjectParts> read_object(Store& store, const ObjectID& id) {
  Result<ObjectView> pinned = store.pin(id);
  if (!pinned.ok()) return pinned.status();
  ObjectParts parts{*pinned, read_header(pinned->data), 0, {}};
  const ObjectHeader& h = parts.header;
  ObjectLayout layout(h.nrefs, h.nbuf, h.stream_len);
  if (h.magic != kObjectMagic || layout.end_of_stream > parts.view.size) {
    store.unpin(id);
    return Status(StatusCode::kInvalid, "corrupt object: its bytes are not in ember's format");
  }
  parts.stream_at = layout.stream_at;
  parts.buffers.resize(h.nbuf);
  if (h.nbuf > 0) {
    std::memcpy(parts.buffers.data(), parts.view.data + layout.spans_at,
                h.nbuf * sizeof(BufferSpan));
  }
  return parts;
}

bool write_error_message(Store& store, const ObjectID& id, ErrorKind kind,
                         std::string_view message) {
  Result<ObjectWriter> w = ObjectWriter::begin(
      store, id, message, {}, {}, ObjectMeta{kFlagError | kFlagRawMessage, kind, true});
  return w.ok() && w->finish().ok();
}

}  // namespace ember
