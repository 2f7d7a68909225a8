// DALI operators fn.crs4.cassandra (self-fed from a UUID list) and fn.crs4.cassandra_interactive
// (fed UUIDs at run time). Both are thin: the engine reads, they only emit batches.
#include <algorithm>
#include <initializer_list>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "dali/core/error_handling.h"
#include "dali/pipeline/operator/checkpointing/op_checkpoint.h"
#include "dali/pipeline/operator/error_reporting.h"
#include "dali/pipeline/operator/operator.h"
#include "dali_ops/output_writer.h"
#include "engine/errors.h"
#include "engine/reader_arguments.h"
#include "engine/loaders.h"
#include "engine/reader_checkpoint.h"

namespace cassandra_dali {
namespace {

using dali::CPUBackend;
using dali::OpSpec;
using dali::Workspace;

// The declared arguments (engine/reader_arguments.h) as this operator was given them; nullopt
// for those left out.
ArgumentSource SpecArguments(const OpSpec &spec) {
  return [&spec](const ArgumentDecl &decl) -> std::optional<ArgValue> {
    if (!decl.required && !spec.HasArgument(decl.name)) return std::nullopt;
    return std::visit(
        [&](const auto &default_value) -> ArgValue {
          using T = std::decay_t<decltype(default_value)>;
          if constexpr (std::is_same_v<T, std::vector<std::string>>) {
            return spec.GetRepeatedArgument<std::string>(decl.name);
          } else {
            return spec.GetArgument<T>(decl.name);
          }
        },
        decl.default_value);
  };
}

// Runs `fn`, turning engine errors into DALI errors with the same message, so they reach Python
// as exceptions from pipe.build() / pipe.run().
template <typename Fn>
auto Translate(Fn &&fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const ArgumentError &e) {
    throw dali::DaliValueError(e.what());
  } catch (const Error &e) {
    throw dali::DaliRuntimeError(std::string("[cassandra-dali] ") + e.what());
  }
}

class CassandraOpBase : public dali::Operator<CPUBackend> {
 public:
  explicit CassandraOpBase(const OpSpec &spec) : dali::Operator<CPUBackend>(spec) {
    Translate([&] {
      ReaderSettings settings = SettingsFromArguments(SpecArguments(spec));
      table_ = std::move(settings.table);
      connection_ = std::move(settings.connection);
      fetch_ = settings.fetch;
    });
  }

  // Host-read outputs share the batch's buffers sample by sample (see output_writer.h).
  bool HasContiguousOutputs() const override { return false; }

 protected:
  bool SetupImpl(std::vector<dali::OutputDesc> &, const Workspace &) override { return false; }

  std::shared_ptr<const Session> Connect() const {
    return Translate([&] { return std::make_shared<const Session>(connection_, table_); });
  }

  void Emit(const Batch &batch, Workspace &ws) const {
    WriteBatch(batch, table_.label_type, ws.Output<CPUBackend>(0), ws.Output<CPUBackend>(1),
               ws.HasThreadPool() ? &ws.GetThreadPool() : nullptr);
  }

  TableSpec table_;
  ConnectionOptions connection_;
  FetchOptions fetch_;
};

class CassandraSelfFeed : public CassandraOpBase {
 public:
  explicit CassandraSelfFeed(const OpSpec &spec) : CassandraOpBase(spec) {
    Translate([&] {
      reader_ = std::make_unique<PrefetchingLoader>(
          Connect(), SelfFeedSettingsFromArguments(SpecArguments(spec)), max_batch_size_, fetch_);
    });
  }

  // Checkpointing: each iteration saves the consumer's position; the serialized checkpoint adds
  // what the order depends on. Restoring computes where this reader continues (the same place,
  // or, on another split, what the run had not delivered: engine/reader_checkpoint.h).
  void SaveState(dali::OpCheckpoint &cpt, dali::AccessOrder) override {
    cpt.MutableCheckpointState() = reader_->position();
  }

  void RestoreState(const dali::OpCheckpoint &cpt) override {
    Translate([&] {
      const auto &saved = cpt.CheckpointState<ReaderCheckpoint>();
      reader_->Seek(ResumePoint(saved, reader_->identity()));
    });
  }

  std::string SerializeCheckpoint(const dali::OpCheckpoint &cpt) const override {
    ReaderCheckpoint checkpoint;
    const ReaderIdentity identity = reader_->identity();
    try {
      checkpoint.position = cpt.CheckpointState<ReaderPosition>();
    } catch (const std::exception &) {
      try {
        // Restored and not run since (an iterator's first checkpoint): where the restore put
        // the reader, computed again from the checkpoint it was given.
        checkpoint.position = ResumePoint(cpt.CheckpointState<ReaderCheckpoint>(), identity);
      } catch (const std::exception &) {
        // DALI's legacy executor after a StopIteration keeps no state for that iteration.
        throw dali::DaliRuntimeError(
            "[cassandra-dali] no reader state was saved for the last iteration (DALI's legacy "
            "executor after a StopIteration): checkpoint with exec_dynamic=True, or with "
            "loop_forever=True");
      }
    }
    checkpoint.identity = identity;
    return SerializeReaderCheckpoint(checkpoint);
  }

  void DeserializeCheckpoint(dali::OpCheckpoint &cpt, const std::string &data) const override {
    cpt.MutableCheckpointState() = Translate([&] { return ParseReaderCheckpoint(data); });
  }

  dali::ReaderMeta GetReaderMeta() const override {
    const auto &layout = reader_->layout();
    dali::ReaderMeta meta;
    // The epoch the reader is in: after an elastic resume, the part of it left (an iterator
    // built then sizes that epoch right; checkpoints.follow_epochs re-reads it after).
    meta.epoch_size = reader_->EpochSize();
    meta.epoch_size_padded = reader_->PaddedEpochSize();
    meta.number_of_shards = layout.num_shards;
    meta.shard_id = layout.shard_id;
    meta.pad_last_batch = 1;
    meta.stick_to_shard = 1;
    return meta;
  }

 protected:
  void RunImpl(Workspace &ws) override {
    const Batch *batch = Translate([&] { return reader_->Next(); });
    if (!batch) throw dali::DaliStopIteration("end of epoch (loop_forever=False)");
    Emit(*batch, ws);
  }

 private:
  std::unique_ptr<PrefetchingLoader> reader_;
};

class CassandraInteractive : public CassandraOpBase {
 public:
  explicit CassandraInteractive(const OpSpec &spec) : CassandraOpBase(spec) {
    reader_ = Translate(
        [&] { return std::make_unique<DirectLoader>(Connect(), fetch_); });
  }

  // Stateless between iterations (it reads what it is fed): checkpoints hold nothing for it, so
  // pipelines with enable_checkpointing=True build.
  void SaveState(dali::OpCheckpoint &cpt, dali::AccessOrder) override {
    cpt.MutableCheckpointState() = std::monostate();
  }
  void RestoreState(const dali::OpCheckpoint &) override {}
  std::string SerializeCheckpoint(const dali::OpCheckpoint &) const override { return ""; }
  void DeserializeCheckpoint(dali::OpCheckpoint &cpt, const std::string &) const override {
    cpt.MutableCheckpointState() = std::monostate();
  }

 protected:
  void RunImpl(Workspace &ws) override {
    const auto &input = ws.Input<CPUBackend>(0);
    const int n = input.num_samples();
    uuids_.resize(n);
    for (int i = 0; i < n; ++i) {
      DALI_ENFORCE(input.type() == DALI_UINT8 || input.type() == DALI_UINT64,
                   "cassandra_interactive: UUIDs must be uint8 [16] or uint64 [2] per sample");
      DALI_ENFORCE(dali::volume(input.tensor_shape(i)) * dali::TypeTable::GetTypeInfo(
                                                              input.type()).size() == 16,
                   dali::make_string("cassandra_interactive: sample ", i,
                                     " is not a 16-byte UUID (shape ", input.tensor_shape(i),
                                     ")"));
      if (input.type() == DALI_UINT8) {
        std::memcpy(uuids_[i].data(), input.tensor<uint8_t>(i), 16);
      } else {
        // The reference project's layout: the driver's CassUuid as two uint64.
        const uint64_t *words = input.tensor<uint64_t>(i);
        uuids_[i] = FromCassUuid(CassUuid{words[0], words[1]});
      }
    }
    const Batch *batch = Translate([&] { return reader_->Read(uuids_); });
    Emit(*batch, ws);
  }

 private:
  std::unique_ptr<DirectLoader> reader_;
  std::vector<UuidBytes> uuids_;
};

}  // namespace
}  // namespace cassandra_dali

DALI_REGISTER_OPERATOR(crs4__cassandra, ::cassandra_dali::CassandraSelfFeed, ::dali::CPU);
DALI_REGISTER_OPERATOR(crs4__cassandra_interactive, ::cassandra_dali::CassandraInteractive,
                       ::dali::CPU);

namespace cassandra_dali {
namespace {

// The declared arguments of the given scopes, with their defaults and docs.
dali::OpSchema &AddDeclaredArguments(dali::OpSchema &schema,
                                     std::initializer_list<ArgScope> scopes) {
  for (const auto &decl : ReaderArguments()) {
    if (std::find(scopes.begin(), scopes.end(), decl.scope) == scopes.end()) continue;
    if (decl.required) {
      schema.AddArg(decl.name, decl.doc, DALI_STRING);  // only the table is required
      continue;
    }
    std::visit([&](const auto &value) { schema.AddOptionalArg(decl.name, decl.doc, value); },
               decl.default_value);
  }
  return schema;
}

}  // namespace
}  // namespace cassandra_dali

// What DALI_SCHEMA expands to, with arguments added from their one declaration.
#if DALI_SCHEMA_DEFAULT_METADATA_POLICY
#define CASSANDRA_DALI_NEW_SCHEMA(name) \
  ::dali::SchemaRegistry::RegisterSchema(name).MakeDefined().UseDefaultMetadataPolicy()
#else
#define CASSANDRA_DALI_NEW_SCHEMA(name) ::dali::SchemaRegistry::RegisterSchema(name).MakeDefined()
#endif

int DALI_OPERATOR_SCHEMA_REQUIRED_FOR_crs4__cassandra_base() { return 42; }
static ::dali::OpSchema *const crs4__cassandra_base_schema =
    &::cassandra_dali::AddDeclaredArguments(
        CASSANDRA_DALI_NEW_SCHEMA("crs4__cassandra_base")
            .DocStr("Arguments shared by the Cassandra readers."),
        {::cassandra_dali::ArgScope::kReader, ::cassandra_dali::ArgScope::kOperators});

// fn.crs4.cassandra: its own arguments (the list, shards, order, read-ahead) from the
// declaration too.
int DALI_OPERATOR_SCHEMA_REQUIRED_FOR_crs4__cassandra() { return 42; }
static ::dali::OpSchema *const crs4__cassandra_schema = &::cassandra_dali::AddDeclaredArguments(
    CASSANDRA_DALI_NEW_SCHEMA("crs4__cassandra")
        .DocStr(R"(Reads samples (encoded bytes) and labels from a Cassandra table by UUID.

Walks `source_uuids` (or `source_uuids_file`) epoch after epoch. Every rank draws the same
permutation from `shuffle_seed` and the epoch (a fixed default, so ranks agree unless told
otherwise; DALI's per-operator `seed` is not used, since pipelines often get one per rank),
takes shard `shard_id` of `num_shards` (positions [N*i/S, N*(i+1)/S)), and pads it by
repeating its last sample to ceil(ceil(N/S)/B) whole batches, so all ranks run the same number
of batches and shards never overlap. DALI iterators with `reader_name` trim the padding.)")
        .NumInput(0)
        .NumOutput(2)
        .AddParent("crs4__cassandra_base"),
    {::cassandra_dali::ArgScope::kSelfFeed});

DALI_SCHEMA(crs4__cassandra_interactive)
    .DocStr(R"(Reads the samples whose UUIDs it is fed (uint8 [16] or uint64 [2] per sample,
e.g. from fn.external_source), for serving.)")
    .NumInput(1)
    .NumOutput(2)
    .AddParent("crs4__cassandra_base");
