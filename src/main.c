/* vmm: command-line entry point. Only main() decides the exit status. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "vm.h"

#define VMM_VERSION "0.1.0"

static const char usage_top[] =
	"usage: vmm run --kernel PATH [options]   boot a guest\n"
	"       vmm --help | --version\n"
	"\n"
	"Run 'vmm run --help' for the options of run.\n";

static const char usage_run[] =
	"usage: vmm run --kernel PATH [options]\n"
	"\n"
	"  --kernel PATH        bzImage (64-bit boot protocol) or ELF64 vmlinux\n"
	"  --initrd PATH        initial ramdisk\n"
	"  --cmdline STR        kernel command line, replacing the default:\n"
	"                       \"" VMM_DEFAULT_CMDLINE "\"\n"
	"  --mem SIZE           guest RAM, e.g. 512M, 4G (a bare number is MiB;\n"
	"                       default 512M)\n"
	"  --cpus N             vCPUs (default 1)\n"
	"  --hugepages MODE     auto|2M|1G|off (default auto: 2M hugetlb pages when\n"
	"                       enough are free, else transparent huge pages)\n"
	"  --disk path=FILE[,readonly=on][,serial=ID][,cache=none|writeback]\n"
	"       [,engine=io_uring|aio|sync][,queues=N]\n"
	"                       a virtio-blk disk (repeatable: vda, vdb, ...);\n"
	"                       default engine io_uring, one queue per vCPU\n"
	"  --net tap=NAME[,mac=52:54:00:xx:xx:xx][,queues=N]\n"
	"                       a virtio-net NIC on a tap device (repeatable;\n"
	"                       created when missing and run as root); default\n"
	"                       MAC from the tap's name, one queue pair\n"
	"  --vfio BDF           pass host PCI device BDF (e.g. 0000:00:04.0, or its\n"
	"                       sysfs path), bound to vfio-pci, to the guest\n"
	"                       (repeatable; needs an IOMMU)\n"
	"  --console SINK       stdio|file:PATH|none (default stdio; on a terminal,\n"
	"                       Ctrl-A x quits and Ctrl-A Ctrl-A sends Ctrl-A)\n"
	"  --no-seccomp         run without the seccomp filter (debugging)\n"
	"  -v, --verbose        more detail on stderr (repeat for debug)\n"
	"  -q, --quiet          errors only\n"
	"  -h, --help           this text\n"
	"\n"
	"exit status:\n"
	"  0      the guest rebooted, reset or powered off\n"
	"  1      runtime failure: host error, guest triple fault, KVM error,\n"
	"         a disk image locked by another process, a busy tap device\n"
	"  2      usage error: bad option or value, unusable kernel/initrd file,\n"
	"         a --vfio device that does not exist or is not bound to vfio-pci\n"
	"  128+N  stopped by signal N (130 for SIGINT or Ctrl-A x, 143 for SIGTERM)\n";

static int cmd_run(int argc, char *argv[])
{
	struct vmm_config cfg;
	struct vm vm;
	char err[256];
	bool help, usage;
	int r;

	if (config_parse_run(&cfg, argc, argv, &help, err, sizeof(err))) {
		log_err(NULL, "%s", err);
		config_free(&cfg);
		return VMM_EXIT_USAGE;
	}
	if (help) {
		fputs(usage_run, stdout);
		config_free(&cfg);
		return VMM_EXIT_OK;
	}
	log_set_level(cfg.verbosity < 0 ? LOG_ERROR
		      : cfg.verbosity == 0 ? LOG_WARN
		      : cfg.verbosity == 1 ? LOG_INFO : LOG_DEBUG);

	if (vm_check_inputs(&cfg)) {
		config_free(&cfg);
		return VMM_EXIT_USAGE;
	}
	r = vm_create(&vm, &cfg, &usage);
	if (!r)
		r = vm_load(&vm, &usage);
	if (r) {
		vm_destroy(&vm);
		config_free(&cfg);
		return usage ? VMM_EXIT_USAGE : VMM_EXIT_FAILURE;
	}
	if (!vm.hw_virt)
		log_warn(NULL, "this host's KVM is not hardware-assisted (no vmx/svm CPU flag): stock Linux kernels will not boot here; scripts/lab runs them on a real KVM");
	r = vm_run(&vm);
	vm_destroy(&vm);
	config_free(&cfg);
	return r;
}

int main(int argc, char *argv[])
{
	if (argc < 2) {
		fputs(usage_top, stderr);
		return VMM_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		fputs(usage_top, stdout);
		return VMM_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("vmm %s\n", VMM_VERSION);
		return VMM_EXIT_OK;
	}
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	log_err(NULL, "unknown command '%s' (try 'vmm --help')", argv[1]);
	return VMM_EXIT_USAGE;
}
