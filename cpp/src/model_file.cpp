// Reads backprop model files: a zip of stored .npy members holding a JSON architecture and the
// flat parameters. Every length in the file is checked before it is used, so a truncated or
// corrupt file gives a clear std::runtime_error, never a read past the end of a buffer.
#include "backprop/model_file.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace backprop {

namespace {

constexpr const char* kFormatName = "backprop-model";

// ---------------------------------------------------------------------------------------------
// Errors and small helpers

// The length of the valid UTF-8 sequence at text[i] (1 to 4), or 0 when the bytes there are not
// one.
std::size_t utf8_sequence(const std::string& text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  std::size_t length = 0;
  std::uint32_t cp = 0;
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    cp = lead & 0x1Fu;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    cp = lead & 0x0Fu;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    cp = lead & 0x07u;
  } else {
    return 0;
  }
  if (text.size() - i < length) return 0;
  for (std::size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0u) != 0x80u) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3Fu);
  }
  const std::uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < smallest[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return length;
}

// Text from the file, made safe for a one-line UTF-8 message: control characters and bytes that
// are not UTF-8 escaped as \xNN, text past `limit` bytes cut.
std::string printable(const std::string& text, std::size_t limit = 60) {
  static const char* const kHex = "0123456789abcdef";
  std::string out;
  std::size_t i = 0;
  while (i < text.size() && i < limit) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const std::size_t length = utf8_sequence(text, i);
    if (length == 0 || c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
      ++i;
    } else {
      out.append(text, i, length);
      i += length;
    }
  }
  if (i < text.size()) out += "...";
  return out;
}

std::string quoted(const std::string& text) { return "'" + printable(text) + "'"; }

[[noreturn]] void fail(const std::string& path, const std::string& message) {
  throw std::runtime_error(printable(path, 4096) + ": " + message);
}

bool host_is_little_endian() {
  const std::uint16_t probe = 1;
  unsigned char first = 0;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

std::uint64_t read_le(const unsigned char* bytes, int count) {
  std::uint64_t value = 0;
  for (int i = count - 1; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

std::uint16_t le16(const unsigned char* bytes) { return std::uint16_t(read_le(bytes, 2)); }
std::uint32_t le32(const unsigned char* bytes) { return std::uint32_t(read_le(bytes, 4)); }
std::uint64_t le64(const unsigned char* bytes) { return read_le(bytes, 8); }

// Appends code point cp to out as UTF-8; false for a surrogate or a value past U+10FFFF.
bool append_utf8(std::string& out, std::uint32_t cp) {
  if (cp >= 0xD800 && cp <= 0xDFFF) return false;
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp <= 0x10FFFF) {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    return false;
  }
  return true;
}

// a * b and a + b without wrapping; false when the result does not fit.
bool checked_mul(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return false;
  out = a * b;
  return true;
}

bool checked_add(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
  if (b > std::numeric_limits<std::uint64_t>::max() - a) return false;
  out = a + b;
  return true;
}

// The CRC-32 of the zip format (reflected polynomial 0xEDB88320), updated over a block of bytes.
class Crc32 {
 public:
  void update(const void* data, std::size_t count) {
    static const std::array<std::uint32_t, 256> table = make_table();
    const unsigned char* bytes = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < count; ++i)
      state_ = table[(state_ ^ bytes[i]) & 0xFFu] ^ (state_ >> 8);
  }
  std::uint32_t value() const { return state_ ^ 0xFFFFFFFFu; }

 private:
  static std::array<std::uint32_t, 256> make_table() {
    std::array<std::uint32_t, 256> table{};
    for (std::uint32_t n = 0; n < 256; ++n) {
      std::uint32_t c = n;
      for (int bit = 0; bit < 8; ++bit) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[n] = c;
    }
    return table;
  }
  std::uint32_t state_ = 0xFFFFFFFFu;
};

// ---------------------------------------------------------------------------------------------
// The file: reads of checked byte ranges

class FileBytes {
 public:
  explicit FileBytes(const std::string& path) : path_(path) {
    errno = 0;
    stream_.open(path, std::ios::binary);
    if (!stream_) {
      const int error = errno;
      fail(path, std::string("cannot open the file") +
                     (error != 0 ? std::string(" (") + std::strerror(error) + ")" : ""));
    }
    stream_.seekg(0, std::ios::end);
    const std::streamoff end = stream_.tellg();
    if (!stream_ || end < 0) fail(path, "cannot read the file (not a regular file?)");
    size_ = std::uint64_t(end);
  }

  const std::string& path() const { return path_; }
  std::uint64_t size() const { return size_; }

  // Reads count bytes at offset into out; `what` names them in the error when the file is
  // shorter than that.
  void read(std::uint64_t offset, void* out, std::uint64_t count, const std::string& what) {
    if (offset > size_ || count > size_ - offset)
      fail(path_, "is truncated or corrupt: " + what + " extends past the end of the file (" +
                      std::to_string(size_) + " bytes)");
    if (count == 0) return;
    if (count > std::uint64_t(std::numeric_limits<std::streamsize>::max()))
      fail(path_, what + " is too large to read");
    stream_.clear();
    stream_.seekg(std::streamoff(offset), std::ios::beg);
    stream_.read(static_cast<char*>(out), std::streamsize(count));
    if (!stream_ || std::uint64_t(stream_.gcount()) != count)
      fail(path_, "cannot read " + what + " (read error)");
  }

  std::vector<unsigned char> read(std::uint64_t offset, std::uint64_t count,
                                  const std::string& what) {
    if (offset > size_ || count > size_ - offset)
      fail(path_, "is truncated or corrupt: " + what + " extends past the end of the file (" +
                      std::to_string(size_) + " bytes)");
    std::vector<unsigned char> bytes(static_cast<std::size_t>(count));
    read(offset, bytes.data(), count, what);
    return bytes;
  }

 private:
  std::string path_;
  std::ifstream stream_;
  std::uint64_t size_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The zip archive (PKWARE APPNOTE): end of central directory (and its ZIP64 form), central
// directory entries (with ZIP64 extra fields), local headers.

constexpr std::uint32_t kLocalHeaderSignature = 0x04034b50;
constexpr std::uint32_t kCentralHeaderSignature = 0x02014b50;
constexpr std::uint32_t kEndSignature = 0x06054b50;
constexpr std::uint32_t kZip64EndSignature = 0x06064b50;
constexpr std::uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr std::uint64_t kEndSize = 22;
constexpr std::uint64_t kZip64LocatorSize = 20;
constexpr std::uint64_t kZip64EndSize = 56;
constexpr std::uint64_t kCentralHeaderSize = 46;
constexpr std::uint64_t kLocalHeaderSize = 30;
constexpr std::uint64_t kMaxCommentSize = 0xFFFF;

struct ZipMember {
  std::string name;
  std::uint16_t flags = 0;
  std::uint16_t method = 0;
  std::uint32_t crc = 0;
  std::uint64_t compressed_size = 0;
  std::uint64_t size = 0;
  std::uint64_t local_offset = 0;
};

const char* method_name(std::uint16_t method) {
  switch (method) {
    case 8:
      return "deflate";
    case 9:
      return "deflate64";
    case 12:
      return "bzip2";
    case 14:
      return "lzma";
    case 93:
      return "zstandard";
    case 95:
      return "xz";
    default:
      return "an unknown method";
  }
}

class ZipArchive {
 public:
  explicit ZipArchive(const std::string& path) : file_(path) {
    if (file_.size() < 4)
      fail(path, "is not a backprop model file (too short to be an .npz archive)");
    unsigned char magic[4];
    file_.read(0, magic, 4, "the zip signature");
    const std::uint32_t signature = le32(magic);
    if (signature != kLocalHeaderSignature && signature != kEndSignature)
      fail(path, "is not a backprop model file (not an .npz archive: no zip signature)");
    read_central_directory();
  }

  FileBytes& file() { return file_; }
  const std::string& path() const { return file_.path(); }

  // The entry named `name`, or nullptr; a name listed twice resolves to its last entry, as
  // Python's zipfile does.
  const ZipMember* find(const std::string& name) const {
    const ZipMember* found = nullptr;
    for (const ZipMember& member : members_)
      if (member.name == name) found = &member;
    return found;
  }

  // The file offset of a stored member's data, after checking its local header and that the
  // data lies inside the file.
  std::uint64_t data_offset(const ZipMember& member) {
    const std::string what = "member " + quoted(member.name);
    if (member.flags & 0x1) fail(path(), what + " is encrypted; model files are never encrypted");
    if (member.method != 0)
      fail(path(), what + " is compressed (" + method_name(member.method) + ", zip method " +
                       std::to_string(member.method) +
                       "); only uncompressed (stored) members are supported: write the model with "
                       "backprop's save or np.savez, not np.savez_compressed");
    if (member.compressed_size != member.size)
      fail(path(),
           "is corrupt: stored " + what + " has different compressed and uncompressed sizes");
    unsigned char header[kLocalHeaderSize];
    file_.read(member.local_offset, header, kLocalHeaderSize, "the local header of " + what);
    if (le32(header) != kLocalHeaderSignature)
      fail(path(), "is corrupt: the local header of " + what + " has no zip signature");
    const std::uint16_t method = le16(header + 8);
    const std::uint64_t name_size = le16(header + 26);
    const std::uint64_t extra_size = le16(header + 28);
    if (method != member.method)
      fail(path(), "is corrupt: the local and central headers of " + what +
                       " disagree on the compression method");
    const std::vector<unsigned char> name = file_.read(member.local_offset + kLocalHeaderSize,
                                                       name_size, "the local header of " + what);
    if (std::string(name.begin(), name.end()) != member.name)
      fail(path(), "is corrupt: the local header of " + what + " names another file");
    const std::uint64_t offset = member.local_offset + kLocalHeaderSize + name_size + extra_size;
    if (offset > file_.size() || member.size > file_.size() - offset)
      fail(path(),
           "is truncated or corrupt: the data of " + what + " extends past the end of the file");
    return offset;
  }

 private:
  void read_central_directory() {
    const std::uint64_t size = file_.size();
    if (size < kEndSize)
      fail(path(), "is truncated or corrupt (too short for a zip archive's directory)");
    // The end record sits in the last 22 bytes plus a comment of up to 65535 bytes.
    const std::uint64_t tail_size = std::min<std::uint64_t>(size, kEndSize + kMaxCommentSize);
    const std::uint64_t tail_offset = size - tail_size;
    const std::vector<unsigned char> tail = file_.read(tail_offset, tail_size, "the zip directory");
    std::uint64_t end = std::numeric_limits<std::uint64_t>::max();  // offset in tail
    for (std::uint64_t pos = tail_size - kEndSize + 1; pos-- > 0;) {
      if (le32(&tail[pos]) != kEndSignature) continue;
      const std::uint64_t comment = le16(&tail[pos + 20]);
      if (pos + kEndSize + comment == tail_size) {
        end = pos;
        break;
      }
    }
    if (end == std::numeric_limits<std::uint64_t>::max())
      fail(path(), "is truncated or corrupt (no zip end-of-central-directory record)");
    const unsigned char* record = &tail[end];
    const std::uint64_t end_offset = tail_offset + end;
    std::uint64_t disk = le16(record + 4);
    std::uint64_t directory_disk = le16(record + 6);
    std::uint64_t entries_here = le16(record + 8);
    std::uint64_t entries = le16(record + 10);
    std::uint64_t directory_size = le32(record + 12);
    std::uint64_t directory_offset = le32(record + 16);
    std::uint64_t directory_end = end_offset;  // the directory must end before this

    if (entries == 0xFFFF || entries_here == 0xFFFF || directory_size == 0xFFFFFFFFu ||
        directory_offset == 0xFFFFFFFFu) {
      if (end_offset < kZip64LocatorSize)
        fail(path(), "is truncated or corrupt (no ZIP64 end-of-central-directory locator)");
      unsigned char locator[kZip64LocatorSize];
      file_.read(end_offset - kZip64LocatorSize, locator, kZip64LocatorSize, "the ZIP64 locator");
      if (le32(locator) != kZip64LocatorSignature)
        fail(path(), "is truncated or corrupt (no ZIP64 end-of-central-directory locator)");
      const std::uint64_t zip64_offset = le64(locator + 8);
      if (zip64_offset > end_offset - kZip64LocatorSize ||
          end_offset - kZip64LocatorSize - zip64_offset < kZip64EndSize)
        fail(path(), "is corrupt (the ZIP64 end-of-central-directory record is out of place)");
      unsigned char zip64[kZip64EndSize];
      file_.read(zip64_offset, zip64, kZip64EndSize, "the ZIP64 end-of-central-directory record");
      if (le32(zip64) != kZip64EndSignature)
        fail(path(), "is corrupt (bad ZIP64 end-of-central-directory record)");
      disk = le32(zip64 + 16);
      directory_disk = le32(zip64 + 20);
      entries_here = le64(zip64 + 24);
      entries = le64(zip64 + 32);
      directory_size = le64(zip64 + 40);
      directory_offset = le64(zip64 + 48);
      directory_end = zip64_offset;
    }
    if (disk != 0 || directory_disk != 0 || entries_here != entries)
      fail(path(), "is a multi-part zip archive, which is not supported");
    if (directory_size > directory_end || directory_offset > directory_end - directory_size)
      fail(path(), "is truncated or corrupt (the zip central directory lies outside the file)");
    if (entries > directory_size / kCentralHeaderSize)
      fail(path(), "is corrupt (the zip directory lists more entries than it has room for)");
    const std::vector<unsigned char> directory =
        file_.read(directory_offset, directory_size, "the zip central directory");
    std::uint64_t pos = 0;
    for (std::uint64_t i = 0; i < entries; ++i) pos = read_entry(directory, pos, directory_offset);
  }

  // Parses the central directory entry at pos; returns the position of the next one.
  std::uint64_t read_entry(const std::vector<unsigned char>& directory, std::uint64_t pos,
                           std::uint64_t directory_offset) {
    const std::uint64_t size = directory.size();
    const auto corrupt = [&](const std::string& why) {
      fail(path(), "is corrupt (zip central directory entry " +
                       std::to_string(members_.size() + 1) + ": " + why + ")");
    };
    if (size - pos < kCentralHeaderSize) corrupt("cut short");
    const unsigned char* header = &directory[pos];
    if (le32(header) != kCentralHeaderSignature) corrupt("bad signature");
    ZipMember member;
    member.flags = le16(header + 8);
    member.method = le16(header + 10);
    member.crc = le32(header + 16);
    member.compressed_size = le32(header + 20);
    member.size = le32(header + 24);
    const std::uint64_t name_size = le16(header + 28);
    const std::uint64_t extra_size = le16(header + 30);
    const std::uint64_t comment_size = le16(header + 32);
    const std::uint64_t start_disk = le16(header + 34);
    member.local_offset = le32(header + 42);
    if (size - pos - kCentralHeaderSize < name_size + extra_size + comment_size)
      corrupt("its name, extra field or comment runs past the directory");
    const unsigned char* name = header + kCentralHeaderSize;
    member.name.assign(reinterpret_cast<const char*>(name), std::size_t(name_size));

    // ZIP64 extended information (header id 1): the 64-bit values of the fields set to all ones,
    // in this order: uncompressed size, compressed size, local header offset, start disk.
    const unsigned char* extra = name + name_size;
    std::uint64_t at = 0;
    while (extra_size - at >= 4) {
      const std::uint16_t id = le16(extra + at);
      const std::uint64_t block = le16(extra + at + 2);
      at += 4;
      if (block > extra_size - at) corrupt("an extra field runs past its entry");
      if (id == 0x0001) {
        const unsigned char* field = extra + at;
        std::uint64_t left = block;
        const auto take = [&](std::uint64_t& value) {
          if (left < 8) corrupt("a ZIP64 extra field is too short");
          value = le64(field);
          field += 8;
          left -= 8;
        };
        if (member.size == 0xFFFFFFFFu) take(member.size);
        if (member.compressed_size == 0xFFFFFFFFu) take(member.compressed_size);
        if (member.local_offset == 0xFFFFFFFFu) take(member.local_offset);
      }
      at += block;
    }
    if (start_disk != 0 && start_disk != 0xFFFF) corrupt("it lives on another disk");
    if (member.local_offset >= directory_offset)
      corrupt("its local header offset points past the file's data");
    members_.push_back(std::move(member));
    return pos + kCentralHeaderSize + name_size + extra_size + comment_size;
  }

  FileBytes file_;
  std::vector<ZipMember> members_;
};

// ---------------------------------------------------------------------------------------------
// .npy members (the NumPy format: magic, version, header length, a Python dict literal with
// 'descr', 'fortran_order' and 'shape', then the raw array data)

struct NpyArray {
  std::string key;               // the member name without ".npy"
  std::string descr;             // as written, e.g. '<f8'
  bool little_endian = true;     // the data's byte order
  char kind = 0;                 // 'f', 'i', 'u', 'U', ...
  std::uint64_t item_size = 0;   // bytes per element
  std::uint64_t unit_count = 0;  // for 'U': characters per element
  std::vector<std::uint64_t> shape;
  std::uint64_t count = 1;         // elements
  std::uint64_t data_offset = 0;   // in the file
  std::uint64_t data_size = 0;     // bytes
  std::uint32_t expected_crc = 0;  // the zip entry's CRC-32 of header and data
  Crc32 crc;                       // over the bytes read so far (the header)

  std::string shape_text() const {
    std::string text = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) {
      text += std::to_string(shape[i]);
      if (shape.size() == 1 || i + 1 < shape.size()) text += shape.size() == 1 ? "," : ", ";
    }
    return text + ")";
  }
};

// Parses the header's dict literal, {'descr': '<f8', 'fortran_order': False, 'shape': (3,), }.
class NpyHeaderParser {
 public:
  NpyHeaderParser(const std::string& text, const std::string& path, const std::string& what)
      : text_(text), path_(path), what_(what) {}

  void parse(NpyArray& array) {
    bool has_descr = false, has_order = false, has_shape = false;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = quoted_string();
      expect(':');
      skip_space();
      if (key == "descr") {
        if (peek() == '[') bad("has a structured dtype, which model files never use");
        array.descr = quoted_string();
        has_descr = true;
      } else if (key == "fortran_order") {
        fortran_order_ = word();
        has_order = true;
      } else if (key == "shape") {
        array.shape = shape();
        has_shape = true;
      } else {
        bad("has an unexpected header key " + quoted(key));
      }
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      skip_space();
      if (peek() != '}') bad("has a malformed header (expected ',' or '}')");
    }
    if (!has_descr || !has_order || !has_shape)
      bad("has a header without 'descr', 'fortran_order' or 'shape'");
    if (fortran_order_ && array.shape.size() > 1)
      bad("is stored in Fortran order, which model files never use");
  }

 private:
  [[noreturn]] void bad(const std::string& why) const { fail(path_, what_ + " " + why); }

  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }
  void expect(char c) {
    skip_space();
    if (peek() != c) bad(std::string("has a malformed header (expected '") + c + "')");
    ++pos_;
  }
  std::string quoted_string() {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') bad("has a malformed header (expected a quoted string)");
    ++pos_;
    const std::size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] != quote) {
      if (text_[pos_] == '\\') bad("has a malformed header (escapes in a header string)");
      ++pos_;
    }
    if (pos_ >= text_.size()) bad("has a malformed header (unterminated string)");
    return text_.substr(start, pos_++ - start);
  }
  bool word() {
    if (text_.compare(pos_, 4, "True") == 0) {
      pos_ += 4;
      return true;
    }
    if (text_.compare(pos_, 5, "False") == 0) {
      pos_ += 5;
      return false;
    }
    bad("has a malformed header (fortran_order is not True or False)");
  }
  std::vector<std::uint64_t> shape() {
    std::vector<std::uint64_t> dims;
    expect('(');
    while (true) {
      skip_space();
      if (peek() == ')') break;
      if (peek() < '0' || peek() > '9')
        bad("has a malformed header (shape is not a tuple of sizes)");
      std::uint64_t value = 0;
      while (peek() >= '0' && peek() <= '9') {
        if (!checked_mul(value, 10, value) ||
            !checked_add(value, std::uint64_t(peek() - '0'), value))
          bad("has a header whose shape does not fit in 64 bits");
        ++pos_;
      }
      if (peek() == 'L') ++pos_;  // files written by Python 2
      dims.push_back(value);
      if (dims.size() > 32) bad("has a header with more than 32 dimensions");
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      skip_space();
      if (peek() != ')') bad("has a malformed header (expected ',' or ')' in shape)");
    }
    ++pos_;
    return dims;
  }

  const std::string& text_;
  const std::string& path_;
  const std::string& what_;
  std::size_t pos_ = 0;
  bool fortran_order_ = false;
};

// Splits descr ('<f8', '>U14', '|u1', 'i4') into byte order, kind and element size.
void decode_descr(NpyArray& array, const std::string& path, const std::string& what) {
  const std::string& d = array.descr;
  std::size_t pos = 0;
  char order = '=';
  if (!d.empty() && (d[0] == '<' || d[0] == '>' || d[0] == '|' || d[0] == '=')) order = d[pos++];
  if (pos >= d.size()) fail(path, what + " has an invalid dtype " + quoted(d));
  array.kind = d[pos++];
  if (pos >= d.size() || d.size() - pos > 18)
    fail(path, what + " has an unsupported dtype " + quoted(d));
  std::uint64_t size = 0;
  for (; pos < d.size(); ++pos) {
    if (d[pos] < '0' || d[pos] > '9') fail(path, what + " has an unsupported dtype " + quoted(d));
    size = size * 10 + std::uint64_t(d[pos] - '0');
  }
  array.little_endian = order == '<' || ((order == '=' || order == '|') && host_is_little_endian());
  if (array.kind == 'U') {
    array.unit_count = size;
    if (!checked_mul(size, 4, array.item_size))
      fail(path, what + " has an unsupported dtype " + quoted(d));
  } else {
    array.item_size = size;
  }
}

class NpyReader {
 public:
  explicit NpyReader(ZipArchive& archive) : archive_(archive) {}

  bool has(const std::string& key) const { return archive_.find(key + ".npy") != nullptr; }

  // Finds member key.npy and reads its header; throws when it is missing or malformed.
  NpyArray open(const std::string& key) {
    const std::string& path = archive_.path();
    const ZipMember* member = archive_.find(key + ".npy");
    if (member == nullptr)
      fail(path, "is not a backprop model file: it has no " + quoted(key) + " member");
    const std::string what = "member " + quoted(member->name);
    NpyArray array;
    array.key = key;
    array.expected_crc = member->crc;
    const std::uint64_t offset = archive_.data_offset(*member);
    const std::uint64_t size = member->size;

    constexpr std::uint64_t kMagicSize = 6;
    unsigned char prefix[12];
    if (size < kMagicSize + 4) fail(path, what + " is too short to be a .npy array");
    archive_.file().read(offset, prefix, kMagicSize + 2, what);
    if (std::memcmp(prefix, "\x93NUMPY", kMagicSize) != 0)
      fail(path, what + " is not a .npy array (bad magic)");
    const int major = prefix[6], minor = prefix[7];
    if (major < 1 || major > 3 || minor != 0)
      fail(path, what + " has an unsupported .npy format version " + std::to_string(major) + "." +
                     std::to_string(minor));
    const std::uint64_t length_bytes = major == 1 ? 2 : 4;
    const std::uint64_t prefix_size = kMagicSize + 2 + length_bytes;
    if (size < prefix_size) fail(path, what + " is too short to be a .npy array");
    archive_.file().read(offset + kMagicSize + 2, prefix + kMagicSize + 2, length_bytes, what);
    const std::uint64_t header_size = read_le(prefix + kMagicSize + 2, int(length_bytes));
    if (header_size > size - prefix_size)
      fail(path, what + " is truncated (its .npy header runs past the member)");
    const std::vector<unsigned char> header_bytes =
        archive_.file().read(offset + prefix_size, header_size, what + " header");
    array.crc.update(prefix, std::size_t(prefix_size));
    array.crc.update(header_bytes.data(), header_bytes.size());
    // Version 1 and 2 headers are latin-1, version 3 UTF-8; the keys and values we read are ASCII.
    const std::string header(header_bytes.begin(), header_bytes.end());
    NpyHeaderParser(header, path, what).parse(array);
    decode_descr(array, path, what);

    for (std::uint64_t dim : array.shape)
      if (!checked_mul(array.count, dim, array.count))
        fail(path, what + " has a shape too large to hold");
    if (!checked_mul(array.count, array.item_size, array.data_size))
      fail(path, what + " has a shape too large to hold");
    array.data_offset = offset + prefix_size + header_size;
    const std::uint64_t available = size - prefix_size - header_size;
    if (available < array.data_size)
      fail(path, what + " is truncated: its header describes " + std::to_string(array.data_size) +
                     " bytes of data but it holds " + std::to_string(available));
    if (available > array.data_size)
      fail(path, what + " is corrupt: it holds " + std::to_string(available - array.data_size) +
                     " bytes after the array its header describes");
    return array;
  }

  // Reads the array's data into out (data_size bytes) and checks the member's CRC-32.
  void read_data(NpyArray& array, void* out) {
    const std::string what = "member " + quoted(array.key + ".npy");
    archive_.file().read(array.data_offset, out, array.data_size, what);
    array.crc.update(out, std::size_t(array.data_size));
    if (array.crc.value() != array.expected_crc)
      fail(archive_.path(), what + " is corrupt (its CRC-32 does not match the zip directory)");
  }

  std::vector<unsigned char> read_data(NpyArray& array) {
    std::vector<unsigned char> bytes(std::size_t(array.data_size));
    read_data(array, bytes.data());
    return bytes;
  }

  // A 0-d unicode member as UTF-8 (trailing NULs dropped, as NumPy does).
  std::string text(const std::string& key) {
    NpyArray array = open(key);
    if (array.kind != 'U' || !array.shape.empty())
      fail(archive_.path(), "has a malformed " + quoted(key) +
                                " member (expected a text scalar, got dtype " +
                                quoted(array.descr) + " and shape " + array.shape_text() + ")");
    const std::vector<unsigned char> bytes = read_data(array);
    std::uint64_t units = array.unit_count;
    const auto unit = [&](std::uint64_t i) {
      const unsigned char* p = &bytes[std::size_t(4 * i)];
      return array.little_endian ? le32(p)
                                 : (std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 |
                                    std::uint32_t(p[2]) << 8 | std::uint32_t(p[3]));
    };
    while (units > 0 && unit(units - 1) == 0) --units;
    std::string out;
    out.reserve(std::size_t(units));
    for (std::uint64_t i = 0; i < units; ++i)
      if (!append_utf8(out, unit(i)))
        fail(archive_.path(), "has a malformed " + quoted(key) + " member (character " +
                                  std::to_string(i) + " is not a valid Unicode code point)");
    return out;
  }

  // A 0-d integer member; sets `newer` instead of the value when an unsigned value exceeds
  // the signed range.
  long long integer(const std::string& key, bool& too_large) {
    NpyArray array = open(key);
    const bool integral = array.kind == 'i' || array.kind == 'u';
    const std::uint64_t s = array.item_size;
    if (!integral || !array.shape.empty() || !(s == 1 || s == 2 || s == 4 || s == 8))
      fail(archive_.path(), "has a malformed " + quoted(key) +
                                " member (expected an integer scalar, got dtype " +
                                quoted(array.descr) + " and shape " + array.shape_text() + ")");
    std::vector<unsigned char> bytes = read_data(array);
    if (!array.little_endian) std::reverse(bytes.begin(), bytes.end());
    std::uint64_t raw = read_le(bytes.data(), int(s));
    too_large = false;
    if (array.kind == 'i') {
      const std::uint64_t sign = std::uint64_t(1) << (8 * s - 1);
      if (s < 8 && (raw & sign)) raw |= ~((sign << 1) - 1);  // sign-extend
      long long value = 0;
      std::memcpy(&value, &raw, sizeof value);
      return value;
    }
    if (raw > std::uint64_t(std::numeric_limits<long long>::max())) {
      too_large = true;
      return std::numeric_limits<long long>::max();
    }
    return static_cast<long long>(raw);
  }

 private:
  ZipArchive& archive_;
};

// ---------------------------------------------------------------------------------------------
// JSON (RFC 8259): objects, arrays, strings with escapes, numbers kept as written, literals

struct Json {
  enum class Type { null, boolean, number, string, array, object };
  Type type = Type::null;
  bool boolean = false;
  std::string text;      // a string's value, or a number as written
  double number = 0.0;   // a number's value, +-inf when out of range
  bool integer = false;  // a number written without fraction or exponent
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> members;

  // The value of `key` (its last occurrence, as Python's json keeps), or nullptr.
  const Json* get(const std::string& key) const {
    const Json* found = nullptr;
    for (const auto& member : members)
      if (member.first == key) found = &member.second;
    return found;
  }
};

class JsonError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class JsonParser {
 public:
  explicit JsonParser(const std::string& text) : text_(text) {}

  Json document() {
    Json value = parse_value(0);
    skip_space();
    if (pos_ != text_.size()) error("extra data after the value");
    return value;
  }

 private:
  static constexpr int kMaxDepth = 256;

  [[noreturn]] void error(const std::string& what) const {
    throw JsonError(what + " at character " + std::to_string(pos_));
  }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool at_end() const { return pos_ >= text_.size(); }
  void skip_space() {
    while (!at_end() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' ||
                         text_[pos_] == '\r'))
      ++pos_;
  }
  void literal(const char* word) {
    const std::size_t n = std::strlen(word);
    if (text_.compare(pos_, n, word) != 0) error("invalid value");
    pos_ += n;
  }

  Json parse_value(int depth) {
    if (depth > kMaxDepth) error("nesting deeper than " + std::to_string(kMaxDepth));
    skip_space();
    if (at_end()) error("unexpected end of text");
    Json value;
    const char c = peek();
    if (c == '{') {
      value.type = Json::Type::object;
      ++pos_;
      skip_space();
      if (peek() == '}') {
        ++pos_;
        return value;
      }
      while (true) {
        skip_space();
        if (peek() != '"') error("expected a string key");
        std::string key = parse_string();
        skip_space();
        if (peek() != ':') error("expected ':'");
        ++pos_;
        value.members.emplace_back(std::move(key), parse_value(depth + 1));
        skip_space();
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        if (peek() == '}') {
          ++pos_;
          return value;
        }
        error("expected ',' or '}'");
      }
    }
    if (c == '[') {
      value.type = Json::Type::array;
      ++pos_;
      skip_space();
      if (peek() == ']') {
        ++pos_;
        return value;
      }
      while (true) {
        value.items.push_back(parse_value(depth + 1));
        skip_space();
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        if (peek() == ']') {
          ++pos_;
          return value;
        }
        error("expected ',' or ']'");
      }
    }
    if (c == '"') {
      value.type = Json::Type::string;
      value.text = parse_string();
    } else if (c == 't') {
      literal("true");
      value.type = Json::Type::boolean;
      value.boolean = true;
    } else if (c == 'f') {
      literal("false");
      value.type = Json::Type::boolean;
    } else if (c == 'n') {
      literal("null");
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      parse_number(value);
    } else {
      error("invalid value");
    }
    return value;
  }

  unsigned hex4() {
    if (text_.size() - pos_ < 4) error("truncated \\u escape");
    unsigned value = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = text_[pos_++];
      value <<= 4;
      if (h >= '0' && h <= '9')
        value |= unsigned(h - '0');
      else if (h >= 'a' && h <= 'f')
        value |= unsigned(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        value |= unsigned(h - 'A' + 10);
      else
        error("invalid \\u escape");
    }
    return value;
  }

  std::string parse_string() {
    ++pos_;  // the opening quote
    std::string out;
    while (true) {
      if (at_end()) error("unterminated string");
      const unsigned char c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) error("control character in a string");
      if (c != '\\') {
        out += char(c);
        ++pos_;
        continue;
      }
      ++pos_;
      if (at_end()) error("unterminated string");
      const char e = text_[pos_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          std::uint32_t cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {  // a high surrogate needs its low half next
            if (text_.compare(pos_, 2, "\\u") != 0) error("unpaired surrogate in a \\u escape");
            pos_ += 2;
            const std::uint32_t low = hex4();
            if (low < 0xDC00 || low > 0xDFFF) error("unpaired surrogate in a \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          if (!append_utf8(out, cp)) error("unpaired surrogate in a \\u escape");
          break;
        }
        default:
          error("invalid escape in a string");
      }
    }
  }

  void parse_number(Json& value) {
    const std::size_t start = pos_;
    const auto digits = [&] {
      const std::size_t first = pos_;
      while (peek() >= '0' && peek() <= '9') ++pos_;
      return pos_ > first;
    };
    value.type = Json::Type::number;
    value.integer = true;
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
    } else if (!digits()) {
      error("invalid number");
    }
    if (peek() == '.') {
      ++pos_;
      value.integer = false;
      if (!digits()) error("invalid number");
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      value.integer = false;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (!digits()) error("invalid number");
    }
    value.text = text_.substr(start, pos_ - start);
    const char* first = value.text.data();
    const char* last = first + value.text.size();
    const std::from_chars_result result = std::from_chars(first, last, value.number);
    if (result.ec == std::errc::result_out_of_range) {
      // Too large for a double (or too small: those read as 0, which from_chars reports alike).
      const bool negative = value.text[0] == '-';
      bool tiny = false;
      const std::size_t e = value.text.find_first_of("eE");
      if (e != std::string::npos) tiny = value.text[e + 1] == '-';
      value.number = tiny ? 0.0 : (negative ? -HUGE_VAL : HUGE_VAL);
    } else if (result.ec != std::errc() || result.ptr != last) {
      error("invalid number");
    }
  }

  const std::string& text_;
  std::size_t pos_ = 0;
};

std::string describe(const Json& value) {
  switch (value.type) {
    case Json::Type::null:
      return "null";
    case Json::Type::boolean:
      return value.boolean ? "true" : "false";
    case Json::Type::number:
      return printable(value.text, 30);
    case Json::Type::string:
      return quoted(value.text);
    case Json::Type::array:
      return "an array";
    case Json::Type::object:
      return "an object";
  }
  return "a value";
}

// ---------------------------------------------------------------------------------------------
// Names

struct ActivationName {
  const char* name;
  Activation kind;
};

constexpr ActivationName kActivations[] = {
    {"identity", Activation::identity},
    {"sigmoid", Activation::sigmoid},
    {"tanh", Activation::tanh},
    {"relu", Activation::relu},
    {"leaky_relu", Activation::leaky_relu},
    {"elu", Activation::elu},
    {"softplus", Activation::softplus},
    {"gelu", Activation::gelu},
};

bool activation_from_name(const std::string& name, Activation& kind) {
  for (const ActivationName& entry : kActivations)
    if (name == entry.name) {
      kind = entry.kind;
      return true;
    }
  return false;
}

std::string activation_list() {
  std::string text;
  for (const ActivationName& entry : kActivations)
    text += std::string(text.empty() ? "" : ", ") + entry.name;
  return text;
}

// ---------------------------------------------------------------------------------------------
// The model file's members, checked in the order Python's loader checks them

struct Preamble {
  long long version = 0;
  Json architecture;
  std::string dtype;
};

Preamble read_preamble(ZipArchive& archive, NpyReader& npy) {
  const std::string& path = archive.path();
  Preamble preamble;
  if (npy.text("format") != kFormatName)
    fail(path,
         std::string("is not a backprop model file (its format is not '") + kFormatName + "')");
  bool too_large = false;
  preamble.version = npy.integer("version", too_large);
  if (too_large || preamble.version > kModelFileVersion)
    fail(path, "was written by a newer backprop (format version " +
                   (too_large ? std::string("> 2^63") : std::to_string(preamble.version)) +
                   "); this reader reads up to version " + std::to_string(kModelFileVersion));
  if (preamble.version < 1)
    fail(path, "has an unknown format version " + std::to_string(preamble.version));
  for (const char* key : {"architecture", "params"})
    if (!npy.has(key))
      fail(path, std::string("is not a backprop model file: it has no '") + key + "' member");

  const std::string text = npy.text("architecture");
  try {
    preamble.architecture = JsonParser(text).document();
  } catch (const JsonError& error) {
    fail(path,
         std::string("has an invalid 'architecture' member (not JSON: ") + error.what() + ")");
  }
  if (preamble.architecture.type != Json::Type::object)
    fail(path, "has an invalid 'architecture' member (expected a JSON object)");
  const Json* dtype = preamble.architecture.get("dtype");
  if (dtype == nullptr) fail(path, "has an inconsistent architecture: 'dtype' is missing");
  if (dtype->type != Json::Type::string || (dtype->text != "float32" && dtype->text != "float64"))
    fail(path, "has an inconsistent architecture: unknown dtype " + describe(*dtype));
  preamble.dtype = dtype->text;
  return preamble;
}

// Reads the architecture's fields, each failure naming the file and the field.
class ArchitectureReader {
 public:
  ArchitectureReader(const std::string& path, const Json& architecture)
      : path_(path), architecture_(architecture) {}

  [[noreturn]] void inconsistent(const std::string& why) const {
    fail(path_, "has an inconsistent architecture: " + why);
  }

  const Json& field(const Json& object, const std::string& key, const std::string& where) const {
    const Json* value = object.get(key);
    if (value == nullptr) inconsistent(where + quoted(key) + " is missing");
    return *value;
  }

  std::string text(const Json& object, const std::string& key,
                   const std::string& where = "") const {
    const Json& value = field(object, key, where);
    if (value.type != Json::Type::string)
      inconsistent(where + quoted(key) + " is " + describe(value));
    return value.text;
  }

  // A JSON integer that fits in 64 bits.
  long long integer(const Json& value, const std::string& name) const {
    long long result = 0;
    if (value.type == Json::Type::number && value.integer) {
      const char* first = value.text.data();
      const char* last = first + value.text.size();
      const std::from_chars_result parsed = std::from_chars(first, last, result);
      if (parsed.ec == std::errc() && parsed.ptr == last) return result;
      inconsistent(name + " is " + describe(value) + ", which does not fit in 64 bits");
    }
    inconsistent(name + " is " + describe(value) + " (expected an integer)");
  }

  double finite_number(const Json& value, const std::string& name) const {
    if (value.type != Json::Type::number || !std::isfinite(value.number))
      inconsistent(name + " is " + describe(value) + " (expected a finite number)");
    return value.number;
  }

  const Json& root() const { return architecture_; }

 private:
  const std::string& path_;
  const Json& architecture_;
};

template <typename T>
NetworkSpec<T> build_spec(const std::string& path, const Json& architecture,
                          std::uint64_t& n_params) {
  const ArchitectureReader read(path, architecture);
  const Json& layers = read.field(architecture, "layers", "");
  if (layers.type != Json::Type::array) read.inconsistent("'layers' is " + describe(layers));
  if (layers.items.empty()) read.inconsistent("it lists no layers");
  const std::string output = read.text(architecture, "output");
  const std::string loss = read.text(architecture, "loss");
  const std::string reduction = read.text(architecture, "reduction");

  NetworkSpec<T> spec;
  const std::size_t n_layers = layers.items.size();
  std::vector<std::uint64_t> widths;  // widths[s]: 0 the input, s >= 1 layer s's output
  n_params = 0;
  bool overflow = false;
  for (std::size_t l = 0; l < n_layers; ++l) {
    const Json& item = layers.items[l];
    const std::string where = "layers[" + std::to_string(l) + "] ";
    if (item.type != Json::Type::object)
      read.inconsistent("layers[" + std::to_string(l) + "] is " + describe(item));
    LayerSpec<T> layer;
    const long long fan_in = read.integer(read.field(item, "fan_in", where), where + "fan_in");
    const long long fan_out = read.integer(read.field(item, "fan_out", where), where + "fan_out");
    if (fan_in < 1 || fan_out < 1)
      read.inconsistent(where + "fan_in and fan_out must be at least 1");
    layer.fan_in = fan_in;
    layer.fan_out = fan_out;
    const std::string activation = read.text(item, "activation", where);
    const double alpha = read.finite_number(read.field(item, "alpha", where), where + "alpha");
    const bool last = l + 1 == n_layers;

    Activation kind = Activation::identity;
    if (last) {
      if (activation != output)
        read.inconsistent("output " + quoted(output) + " but the last layer applies " +
                          quoted(activation));
      if (activation == "softmax") {
        spec.output.softmax = true;
        if (alpha != 0.0)
          read.inconsistent(where + "alpha is " + std::to_string(alpha) + " for softmax");
      } else if (activation_from_name(activation, kind)) {
        spec.output.act = {kind, T(alpha)};
      } else {
        read.inconsistent("unknown output " + quoted(activation) + " (expected softmax, " +
                          activation_list() + ")");
      }
    } else {
      if (activation == "softmax")
        read.inconsistent(where + "activation 'softmax' is for the output layer only");
      if (!activation_from_name(activation, kind))
        read.inconsistent(where + "activation " + quoted(activation) +
                          " is unknown (expected one of " + activation_list() + ")");
      layer.act = {kind, T(alpha)};
    }

    if (const Json* dropout = item.get("dropout")) {  // absent in files from before dropout
      const double rate = read.finite_number(*dropout, where + "dropout");
      if (!(rate >= 0.0 && rate < 1.0))
        read.inconsistent(where + "dropout is " + dropout->text + " (expected [0, 1))");
      if (last && rate != 0.0)
        read.inconsistent("the output layer has dropout " + dropout->text + "; it must be 0");
      layer.dropout = rate;
    }

    if (l == 0) widths.push_back(std::uint64_t(fan_in));  // the network's input
    const Json* inputs = item.get("inputs");
    std::uint64_t width = 0;
    if (inputs == nullptr || inputs->type == Json::Type::null) {
      width = widths[l];
    } else {
      if (inputs->type != Json::Type::array || inputs->items.empty())
        read.inconsistent(where + "inputs is " + describe(*inputs) +
                          " (expected a non-empty list of layer numbers)");
      for (const Json& source : inputs->items) {
        const long long s = read.integer(source, where + "inputs entry");
        if (s < 0 || std::uint64_t(s) > l)
          read.inconsistent(where + "reads " + std::to_string(s) +
                            "; inputs must be 0 (the network's input) or "
                            "earlier layers 1.." +
                            std::to_string(l));
        layer.sources.push_back(int(s));
        overflow |= !checked_add(width, widths[std::size_t(s)], width);
      }
    }
    if (overflow || width != std::uint64_t(fan_in))
      read.inconsistent(where + "has fan_in " + std::to_string(fan_in) + " but its inputs give " +
                        (overflow ? std::string("more than 2^64") : std::to_string(width)) +
                        " values");
    widths.push_back(std::uint64_t(fan_out));
    std::uint64_t weights = 0;
    overflow |= !checked_mul(std::uint64_t(fan_in), std::uint64_t(fan_out), weights);
    overflow |= !checked_add(n_params, weights, n_params);
    overflow |= !checked_add(n_params, std::uint64_t(fan_out), n_params);
    if (overflow || n_params > std::uint64_t(std::numeric_limits<index_t>::max()))
      read.inconsistent("the layers hold more parameters than fit in 64 bits");
    spec.layers.push_back(std::move(layer));
  }
  spec.inputs = spec.layers.front().fan_in;

  if (loss == "mse")
    spec.loss = Loss::mse;
  else if (loss == "binary_cross_entropy")
    spec.loss = Loss::binary_cross_entropy;
  else if (loss == "cross_entropy")
    spec.loss = Loss::cross_entropy;
  else
    read.inconsistent("unknown loss " + quoted(loss) +
                      " (expected mse, binary_cross_entropy or cross_entropy)");
  if (reduction == "mean")
    spec.reduction = Reduction::mean;
  else if (reduction == "sum")
    spec.reduction = Reduction::sum;
  else
    read.inconsistent("unknown reduction " + quoted(reduction) + " (expected mean or sum)");
  if (spec.loss == Loss::cross_entropy && !spec.output.softmax)
    read.inconsistent("loss 'cross_entropy' needs output 'softmax', not " + quoted(output));
  if (spec.loss == Loss::binary_cross_entropy &&
      (spec.output.softmax || spec.output.act.kind != Activation::sigmoid))
    read.inconsistent("loss 'binary_cross_entropy' needs output 'sigmoid', not " + quoted(output));

  const long long declared = read.integer(read.field(architecture, "n_params", ""), "'n_params'");
  if (declared < 0 || std::uint64_t(declared) != n_params)
    read.inconsistent("it declares " + std::to_string(declared) +
                      " parameters but its layers hold " + std::to_string(n_params));
  try {
    spec.resolve_sources();
  } catch (const std::invalid_argument& error) {
    read.inconsistent(error.what());
  }
  if (std::uint64_t(spec.n_params()) != n_params)
    read.inconsistent("the parameter count does not add up");
  return spec;
}

template <typename T>
std::vector<T> read_params(NpyReader& npy, const std::string& path, const std::string& dtype,
                           std::uint64_t n_params) {
  NpyArray array = npy.open("params");
  const std::uint64_t dtype_size = dtype == "float32" ? 4 : 8;
  if (array.kind != 'f' || array.item_size != dtype_size)
    fail(path, "has params of dtype " + quoted(array.descr) + "; its architecture says " + dtype);
  if (array.shape.size() != 1 || array.shape[0] != n_params)
    fail(path, "has params of shape " + array.shape_text() + "; its architecture implies (" +
                   std::to_string(n_params) + ",)");
  if (sizeof(T) != dtype_size)
    fail(path, "holds " + dtype + " parameters; they were asked for as " +
                   (sizeof(T) == 4 ? "float32" : "float64") + " (use model_file_dtype to choose)");
  std::vector<T> params(static_cast<std::size_t>(n_params));
  npy.read_data(array, params.data());
  if (array.little_endian != host_is_little_endian()) {
    for (T& value : params) {
      unsigned char bytes[sizeof(T)];
      std::memcpy(bytes, &value, sizeof(T));
      std::reverse(bytes, bytes + sizeof(T));
      std::memcpy(&value, bytes, sizeof(T));
    }
  }
  for (std::size_t i = 0; i < params.size(); ++i)
    if (!std::isfinite(params[i]))
      fail(path, "has params containing NaN or Inf (entry " + std::to_string(i) + ")");
  return params;
}

}  // namespace

const char* activation_name(Activation kind) {
  for (const ActivationName& entry : kActivations)
    if (entry.kind == kind) return entry.name;
  return "unknown";
}

const char* loss_name(Loss loss) {
  switch (loss) {
    case Loss::mse:
      return "mse";
    case Loss::binary_cross_entropy:
      return "binary_cross_entropy";
    case Loss::cross_entropy:
      return "cross_entropy";
  }
  return "unknown";
}

const char* reduction_name(Reduction reduction) {
  return reduction == Reduction::sum ? "sum" : "mean";
}

std::string model_file_dtype(const std::string& path) {
  ZipArchive archive(path);
  NpyReader npy(archive);
  return read_preamble(archive, npy).dtype;
}

template <typename T>
ModelFile<T> load_model_file(const std::string& path) {
  ZipArchive archive(path);
  NpyReader npy(archive);
  const Preamble preamble = read_preamble(archive, npy);
  ModelFile<T> model;
  model.version = preamble.version;
  model.dtype = preamble.dtype;
  std::uint64_t n_params = 0;
  model.spec = build_spec<T>(path, preamble.architecture, n_params);
  model.params = read_params<T>(npy, path, preamble.dtype, n_params);
  model.has_optimizer = npy.has("optimizer");
  return model;
}

template ModelFile<float> load_model_file<float>(const std::string&);
template ModelFile<double> load_model_file<double>(const std::string&);

}  // namespace backprop
