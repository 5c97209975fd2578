/*
 * Entry of every tiny guest: vmm enters here in 64-bit mode with its
 * identity page tables (0-4G) and rsi pointing at the zero page.
 * main(rsi) runs on our own stack; returning resets the machine through
 * the i8042, which makes vmm exit 0.
 */
	.section .text.start, "ax"
	.globl _start
	.code64
_start:
	lea	stack_top(%rip), %rsp
	mov	%rsi, %rdi
	call	main
	mov	$0xfe, %al
	out	%al, $0x64
1:	hlt
	jmp	1b

	.bss
	.balign 16
	.space 8192
stack_top:

	.section .note.GNU-stack, "", @progbits
